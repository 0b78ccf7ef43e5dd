/// Learns byte-level BPE merges from a corpus, the way Hugging Face's
/// BpeTrainer does: repeatedly merge the most frequent adjacent pair. Ties go
/// to the pair of earliest-created tokens, so the result is deterministic.
struct BPETrainer {
    /// Token texts in byte-level form; the first 256 are the bytes in order.
    private(set) var tokens: [String] = ByteLevel.scalarOfByte.map { String($0) }
    private(set) var merges: [(String, String)] = []

    private var words: [[Int32]] = []
    private var wordCounts: [Int] = []
    private var pairCounts: [UInt64: Int] = [:]
    /// Words that contained the pair at some point; stale entries are skipped.
    private var pairWords: [UInt64: [Int]] = [:]
    private var queue = MinHeap<Candidate>()
    /// Pairs whose count changed since the queue was last refreshed.
    private var changedPairs = Set<UInt64>()

    /// The most frequent pair sorts first.
    private struct Candidate: Comparable {
        let count: Int
        let pair: UInt64
        static func < (a: Self, b: Self) -> Bool { (-a.count, a.pair) < (-b.count, b.pair) }
    }

    /// `pieces` are pre-tokenized words in byte-level form.
    init(pieces: [String]) {
        var counts: [String: Int] = [:]
        for piece in pieces { counts[piece, default: 0] += 1 }
        // Sorted so word order, and with it every tie, is independent of hashing.
        for (piece, count) in counts.sorted(by: { $0.key < $1.key }) {
            words.append(piece.unicodeScalars.map { Int32(ByteLevel.byteOfScalar[$0]!) })
            wordCounts.append(count)
        }
        for index in words.indices { count(pairsOf: index, sign: 1) }
        refreshQueue()
    }

    private static func pair(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(left) << 32 | UInt64(right)
    }

    private mutating func count(pairsOf index: Int, sign: Int) {
        let word = words[index]
        guard word.count > 1 else { return }
        for position in 0..<(word.count - 1) {
            let pair = Self.pair(word[position], word[position + 1])
            pairCounts[pair, default: 0] += sign * wordCounts[index]
            changedPairs.insert(pair)
            if sign > 0 { pairWords[pair, default: []].append(index) }
        }
    }

    /// Merges until there are `tokenCount` tokens or no pair is left.
    mutating func train(tokenCount: Int) {
        var tokenIds = Dictionary(uniqueKeysWithValues: tokens.enumerated().map { ($1, Int32($0)) })
        while tokens.count < tokenCount, let best = popBest() {
            let left = Int32(best.pair >> 32), right = Int32(truncatingIfNeeded: best.pair)
            let text = tokens[Int(left)] + tokens[Int(right)]
            // Two pairs can spell the same token ("ab c", "a bc"): one id, two merges.
            let merged = tokenIds[text] ?? Int32(tokens.count)
            if merged == tokens.count {
                tokens.append(text)
                tokenIds[text] = merged
            }
            merges.append((tokens[Int(left)], tokens[Int(right)]))
            apply(left, right, as: merged, pair: best.pair)
        }
    }

    private mutating func popBest() -> Candidate? {
        while let candidate = queue.pop() {
            if candidate.count > 0 && pairCounts[candidate.pair] == candidate.count { return candidate }
        }
        return nil
    }

    private mutating func apply(_ left: Int32, _ right: Int32, as merged: Int32, pair: UInt64) {
        var visited = Set<Int>()
        for index in pairWords[pair] ?? [] where visited.insert(index).inserted {
            let word = words[index]
            var rewritten: [Int32] = []
            rewritten.reserveCapacity(word.count)
            var position = 0
            while position < word.count {
                if position + 1 < word.count && word[position] == left && word[position + 1] == right {
                    rewritten.append(merged)
                    position += 2
                } else {
                    rewritten.append(word[position])
                    position += 1
                }
            }
            guard rewritten.count != word.count else { continue }
            count(pairsOf: index, sign: -1)
            words[index] = rewritten
            count(pairsOf: index, sign: 1)
        }
        pairWords[pair] = nil
        refreshQueue()
    }

    /// Queues the new count of every changed pair; older entries go stale.
    private mutating func refreshQueue() {
        for pair in changedPairs {
            if let count = pairCounts[pair], count > 0 { queue.push(Candidate(count: count, pair: pair)) }
        }
        changedPairs.removeAll(keepingCapacity: true)
    }
}
