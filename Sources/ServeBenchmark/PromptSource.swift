/// Prompts of random token ids, one per request index, repeatable for a seed.
public struct PromptSource: Sendable {
    /// Ids every vocabulary has, small test models' included, past the low ids tokenizers
    /// keep for special tokens.
    public static let ids = 100..<1000

    public let length: Int
    public let seed: UInt64

    public init(length: Int, seed: UInt64) {
        self.length = length
        self.seed = seed
    }

    /// The prompt of request `index`: its own generator, so prompts don't depend on the
    /// order they are drawn in.
    public func tokens(for index: Int) -> [Int] {
        var generator = SeededGenerator(seed: seed ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03))
        var tokens = (0..<length).map { _ in Int.random(in: Self.ids, using: &generator) }
        // The index, in base 900, leads the prompt, so no two requests send the same one.
        var rest = index
        for position in tokens.indices {
            tokens[position] = Self.ids.lowerBound + rest % Self.ids.count
            rest /= Self.ids.count
            if rest == 0 { break }
        }
        return tokens
    }

    /// The prompt of request `index` as chat text: its ids written as numbers, since chat
    /// messages cannot carry token ids (the server's token count differs from `length`).
    public func text(for index: Int) -> String {
        tokens(for: index).map(String.init).joined(separator: " ")
    }
}
