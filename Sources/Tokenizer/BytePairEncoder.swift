import Synchronization

/// Byte-pair encoding of one pre-tokenized piece, as Hugging Face's BPE does
/// it: start from the piece's scalars and keep applying the lowest-ranked
/// merge (leftmost on ties) until none applies.
struct BytePairEncoder: Sendable {
    let vocab: [String: Int]
    /// Starting symbols: tokens that are a single scalar.
    private let scalarIds: [UInt32: Int32]
    /// Keyed by the pair's ids, left in the high half.
    private let merges: [UInt64: Merge]
    private let unkId: Int32?
    private let ignoreMerges: Bool
    private let cache = PieceCache()

    private struct Merge: Sendable {
        let rank: Int32
        let id: Int32
    }

    /// A merge waiting to be applied at `position` (the left symbol's index).
    private struct Candidate: Comparable {
        let rank: Int32
        let position: Int32
        static func < (a: Self, b: Self) -> Bool { (a.rank, a.position) < (b.rank, b.position) }
    }

    struct Malformed: Error {
        let reason: String
    }

    init(_ spec: BPEModelSpec) throws {
        vocab = spec.vocab
        var scalarIds: [UInt32: Int32] = [:]
        for (token, id) in spec.vocab where token.unicodeScalars.count == 1 {
            scalarIds[token.unicodeScalars.first!.value] = Int32(id)
        }
        self.scalarIds = scalarIds
        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(spec.merges.count)
        for (rank, (left, right)) in spec.merges.enumerated() {
            guard let a = spec.vocab[left], let b = spec.vocab[right], let merged = spec.vocab[left + right] else {
                throw Malformed(reason: "merge #\(rank) \"\(left) \(right)\" uses a token missing from model.vocab")
            }
            merges[Self.key(Int32(a), Int32(b))] = Merge(rank: Int32(rank), id: Int32(merged))
        }
        self.merges = merges
        if let unk = spec.unkToken {
            guard let id = spec.vocab[unk] else { throw Malformed(reason: "unk_token \"\(unk)\" is not in model.vocab") }
            unkId = Int32(id)
        } else {
            unkId = nil
        }
        ignoreMerges = spec.ignoreMerges
    }

    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Appends the piece's token ids. Scalars missing from the vocabulary
    /// become unk_token, or are dropped when there is none (as in HF).
    func encode(_ piece: String, into ids: inout [Int]) {
        if let cached = cache.lookup(piece) {
            ids += cached
            return
        }
        if ignoreMerges, let id = vocab[piece] {
            ids.append(id)
            return
        }
        let encoded = merge(piece.unicodeScalars.compactMap { scalarIds[$0.value] ?? unkId })
        cache.store(piece, encoded)
        ids += encoded
    }

    private func merge(_ start: [Int32]) -> [Int] {
        let count = start.count
        guard count > 1 else { return start.map(Int.init) }
        var symbols = start
        // A doubly linked list over positions; merged-away symbols leave it.
        var next = (0..<count).map { Int32($0 + 1) }
        var previous = (0..<count).map { Int32($0 - 1) }
        var alive = [Bool](repeating: true, count: count)
        var queue = MinHeap<Candidate>()
        func consider(_ left: Int32) {
            guard left >= 0 else { return }
            let right = next[Int(left)]
            guard right < count,
                  let merge = merges[Self.key(symbols[Int(left)], symbols[Int(right)])] else { return }
            queue.push(Candidate(rank: merge.rank, position: left))
        }
        for position in 0..<Int32(count - 1) { consider(position) }
        while let candidate = queue.pop() {
            let left = Int(candidate.position)
            let right = Int(next[left])
            // Skip candidates whose pair has changed since they were queued.
            guard alive[left], right < count,
                  let merge = merges[Self.key(symbols[left], symbols[right])],
                  merge.rank == candidate.rank else { continue }
            symbols[left] = merge.id
            alive[right] = false
            next[left] = next[right]
            if next[left] < count { previous[Int(next[left])] = Int32(left) }
            consider(previous[left])
            consider(Int32(left))
        }
        var result: [Int] = []
        var position: Int32 = 0
        while position < count {
            result.append(Int(symbols[Int(position)]))
            position = next[Int(position)]
        }
        return result
    }
}

/// Remembers the ids of recent pieces: prompts repeat words constantly.
private final class PieceCache: Sendable {
    private static let capacity = 100_000
    private let entries = Mutex<[String: [Int]]>([:])

    func lookup(_ piece: String) -> [Int]? {
        entries.withLock { $0[piece] }
    }

    /// Once full, the cache keeps what it has (as HF's does) rather than evicting.
    func store(_ piece: String, _ ids: [Int]) {
        entries.withLock { entries in
            if entries.count < Self.capacity { entries[piece] = ids }
        }
    }
}
