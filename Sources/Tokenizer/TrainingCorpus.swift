/// The text `TokenizerBuilder` learns merges from: a few kilobytes of varied
/// English prose, dialogue, numbers and code, so generated tokenizers give
/// common words and code idioms their own tokens.
enum TrainingCorpus {
    static let text = #"""
    The old lighthouse stood at the edge of the cliff, its white paint peeling in long strips. Every evening the keeper climbed the one hundred and twelve steps to light the lamp, and every morning he climbed them again to put it out. He had done this for thirty-one years, and he intended to do it for thirty-one more.
    "Are you coming with us?" she asked. "I don't think so," he replied. "It's getting late, and I've still got work to do." They'll wait for you anyway; we're not leaving until you're ready.
    Science is a way of thinking much more than it is a body of knowledge. Its goal is to find out how the world works, to seek what regularities there may be, to penetrate to the connections of things.
    A large language model predicts the next token given the previous tokens. During training it reads trillions of tokens; during inference it generates one token at a time, sampling from a probability distribution over its vocabulary.
    Mixture-of-experts layers replace a single feed-forward network with many smaller experts. A gating network scores each expert for every token, and only the top few experts run, which keeps the computation per token small while the total number of parameters grows large.
    In the morning market, vendors sold apples, pears, oranges, lemons, tomatoes, potatoes, onions, carrots, peppers and fresh bread. Prices were written on small chalkboards: apples $2.50 per pound, bread $4.00 a loaf, coffee $3.75 a cup.
    The meeting is scheduled for Tuesday, March 14, 2023 at 10:30 AM in room 402. Please bring your laptop, the quarterly report, and any questions you have about the new budget of $1,250,000.
    History teaches us that progress is rarely a straight line. Empires rise and fall, ideas are forgotten and rediscovered, and each generation must learn again what the previous one understood.
    She walked through the quiet library, running her fingers along the spines of books about astronomy, biology, chemistry, geography, mathematics, philosophy, physics and poetry.
    Weather report: cloudy with a chance of rain in the afternoon, highs near 18 degrees, lows around 9. Winds from the northwest at 15 to 25 kilometers per hour. Tomorrow will be sunny and warmer.
    def softmax(logits):
        m = max(logits)
        exps = [math.exp(x - m) for x in logits]
        total = sum(exps)
        return [e / total for e in exps]

    for (int i = 0; i < n; i++) {
        if (values[i] > best) { best = values[i]; index = i; }
    }
    return index;

    func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        for word in text.split(separator: " ") { ids.append(lookup(String(word))) }
        return ids
    }

    SELECT id, name, email FROM users WHERE created_at > '2024-01-01' ORDER BY name LIMIT 100;
    {"model": "deepseek", "layers": 61, "hidden_size": 7168, "experts": 256, "active": 8, "vocab_size": 129280}
    <div class="container"><h1>Welcome</h1><p>This is a paragraph with a <a href="https://example.com">link</a>.</p></div>
    1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 40 50 64 75 99 100 128 256 512 1000 1024 2048 4096 8192 65536
    Once upon a time, in a small village between two rivers, there lived a clever girl who could solve any riddle. People came from distant towns to test her, but none could stump her, until one day a traveler arrived with a question that had no answer.
    What is the difference between weather and climate? Weather is what happens today; climate is what you expect over many years. Why does the sky look blue? Because air scatters short wavelengths of sunlight more strongly than long ones.
    Important: read the instructions carefully before you begin. First, open the box. Second, remove the parts and check them against the list. Third, assemble the frame; finally, attach the wheels and tighten every screw.
    The committee reviewed the proposal and recommended several changes: reduce the cost, shorten the timeline, clarify the responsibilities of each team, and measure the results every month.
    Thank you for your message! I'm happy to help. Could you tell me more about what you're trying to do, which version you're using, and what error you see? Here's a quick summary of the steps so far.
    """#
}
