#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Picks token ids from logits: greedy, or temperature softmax restricted by
/// top-k then top-p, drawn with a seeded generator so runs are reproducible.
///
/// Cost stays near one pass over the vocabulary: greedy is an argmax, top-k a
/// bounded heap, and top-p without top-k grows a candidate set of the most
/// likely tokens only until it holds the nucleus.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: RandomSource

    public init(_ parameters: SamplingParameters) throws(SamplingError) {
        try parameters.validate()
        self.parameters = parameters
        random = RandomSource(seed: parameters.seed)
    }

    public mutating func sample(logits: UnsafeBufferPointer<Float>) -> Int {
        precondition(!logits.isEmpty, "cannot sample from an empty vocabulary")
        let best = Self.argmax(logits)
        let maxLogit = logits[best]
        // Greedy, or nothing finite to normalize against.
        guard parameters.temperature > 0, parameters.topK != 1, maxLogit.isFinite else { return best }
        let weigh = Weighing(maxLogit: maxLogit, scale: 1 / parameters.temperature)

        if parameters.topK > 0 && parameters.topK < logits.count {
            return draw(from: Self.largest(parameters.topK, of: logits), weigh: weigh, total: nil)
        }
        var total = 0.0
        for logit in logits { total += weigh(logit) }
        if parameters.topP >= 1 {
            return drawFromAll(logits, weigh: weigh, total: total)
        }
        // The nucleus is usually a few dozen tokens: widen the candidates until
        // they hold it rather than sorting the whole vocabulary.
        var count = min(64, logits.count)
        while true {
            let candidates = Self.largest(count, of: logits)
            let covered = candidates.reduce(0.0) { $0 + weigh($1.logit) }
            if covered >= Double(parameters.topP) * total || count == logits.count {
                return draw(from: candidates, weigh: weigh, total: total)
            }
            count = min(count * 4, logits.count)
        }
    }

    /// Unnormalized probability: exp((logit - max) / temperature), NaN as 0.
    private struct Weighing {
        let maxLogit: Float
        let scale: Float

        func callAsFunction(_ logit: Float) -> Double {
            logit.isNaN ? 0 : Double(exp((logit - maxLogit) * scale))
        }
    }

    /// `candidates` are sorted most likely first; `total` is the weight of the
    /// whole distribution they come from (nil: just these candidates). Keeps
    /// the nucleus prefix, then draws in proportion to weight.
    private mutating func draw(from candidates: [Candidate], weigh: Weighing, total: Double?) -> Int {
        let weights = candidates.map { weigh($0.logit) }
        var kept = weights.count
        var keptWeight = weights.reduce(0, +)
        if parameters.topP < 1 {
            let target = Double(parameters.topP) * (total ?? keptWeight)
            var cumulative = 0.0
            for (position, weight) in weights.enumerated() {
                cumulative += weight
                if cumulative >= target {
                    kept = position + 1
                    keptWeight = cumulative
                    break
                }
            }
        }
        var remaining = random.nextUnit() * keptWeight
        for position in 0..<kept {
            remaining -= weights[position]
            if remaining < 0 { return candidates[position].index }
        }
        return candidates[kept - 1].index
    }

    private mutating func drawFromAll(_ logits: UnsafeBufferPointer<Float>, weigh: Weighing, total: Double) -> Int {
        var remaining = random.nextUnit() * total
        var lastLikely = 0
        for (index, logit) in logits.enumerated() {
            let weight = weigh(logit)
            guard weight > 0 else { continue }
            remaining -= weight
            if remaining < 0 { return index }
            lastLikely = index
        }
        return lastLikely
    }

    /// The first index of the largest logit; NaN never wins.
    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bestLogit = -Float.infinity
        for (index, logit) in logits.enumerated() where logit > bestLogit {
            best = index
            bestLogit = logit
        }
        return best
    }

    struct Candidate {
        let index: Int
        let logit: Float

        /// Higher logit first; the lower id on ties, as argmax.
        func precedes(_ other: Candidate) -> Bool {
            logit > other.logit || (logit == other.logit && index < other.index)
        }
    }

    /// The `count` most likely tokens, most likely first, in O(n log count):
    /// a min-heap holds the best so far and most tokens fail one comparison
    /// against its root.
    static func largest(_ count: Int, of logits: UnsafeBufferPointer<Float>) -> [Candidate] {
        var heap: [Candidate] = []
        heap.reserveCapacity(count)
        func siftDown(_ start: Int) {
            var parent = start
            while true {
                let left = 2 * parent + 1, right = left + 1
                var worst = parent
                if left < heap.count && heap[worst].precedes(heap[left]) { worst = left }
                if right < heap.count && heap[worst].precedes(heap[right]) { worst = right }
                guard worst != parent else { return }
                heap.swapAt(parent, worst)
                parent = worst
            }
        }
        for (index, logit) in logits.enumerated() {
            let candidate = Candidate(index: index, logit: logit.isNaN ? -.infinity : logit)
            if heap.count < count {
                heap.append(candidate)
                if heap.count == count { for node in stride(from: count / 2 - 1, through: 0, by: -1) { siftDown(node) } }
            } else if candidate.precedes(heap[0]) {
                heap[0] = candidate
                siftDown(0)
            }
        }
        return heap.sorted { $0.precedes($1) }
    }
}
