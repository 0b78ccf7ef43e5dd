#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Picks token ids from logits: greedy, or temperature softmax restricted by
/// top-k then top-p, drawn with a seeded generator so runs are reproducible.
///
/// Cost stays linear in the vocabulary: greedy is an argmax, top-k a bounded
/// heap, and top-p a weighted quickselect rather than a full sort.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: RandomSource
    /// Candidate tokens and their weights, reused across calls.
    private var candidates: [Weighted] = []

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
        let scale = 1 / parameters.temperature
        // exp((logit - max) / temperature): softmax without the normalization.
        func weight(_ logit: Float) -> Double {
            logit.isNaN ? 0 : Double(exp((logit - maxLogit) * scale))
        }

        candidates.removeAll(keepingCapacity: true)
        if parameters.topK > 0 && parameters.topK < logits.count {
            for index in Self.largest(parameters.topK, of: logits) {
                candidates.append(Weighted(index: index, weight: weight(logits[index])))
            }
        } else {
            for (index, logit) in logits.enumerated() {
                candidates.append(Weighted(index: index, weight: weight(logit)))
            }
        }
        var total = 0.0
        for candidate in candidates { total += candidate.weight }
        var kept = candidates.count
        if parameters.topP < 1 {
            (kept, total) = Self.selectNucleus(&candidates, target: Double(parameters.topP) * total)
        }

        var remaining = random.nextUnit() * total
        for candidate in candidates[..<kept] where candidate.weight > 0 {
            remaining -= candidate.weight
            if remaining < 0 { return candidate.index }
        }
        // Rounding left a sliver: the draw belongs to the last likely token.
        return candidates[..<kept].last { $0.weight > 0 }?.index ?? best
    }

    struct Weighted {
        let index: Int
        let weight: Double
    }

    /// Reorders `entries` so that a prefix is the smallest set of heaviest
    /// entries whose weight reaches `target`, and returns its length and
    /// weight. A three-way weighted quickselect: expected linear time.
    static func selectNucleus(_ entries: inout [Weighted], target: Double) -> (count: Int, weight: Double) {
        // entries[..<low] are in the nucleus, entries[low..<high] undecided.
        var low = 0, high = entries.count
        var taken = 0.0
        while taken < target && low < high {
            let pivot = medianOfThree(entries[low].weight, entries[(low + high) / 2].weight, entries[high - 1].weight)
            // Partition into [heavier | equal | lighter].
            var heavierEnd = low, lighterStart = high, position = low
            while position < lighterStart {
                let weight = entries[position].weight
                if weight > pivot {
                    entries.swapAt(position, heavierEnd)
                    heavierEnd += 1
                    position += 1
                } else if weight < pivot {
                    lighterStart -= 1
                    entries.swapAt(position, lighterStart)
                } else {
                    position += 1
                }
            }
            var heavier = 0.0
            for entry in entries[low..<heavierEnd] { heavier += entry.weight }
            if taken + heavier >= target {
                high = heavierEnd
                continue
            }
            taken += heavier
            low = heavierEnd
            // Equal weights join one at a time, so the set stays smallest.
            while low < lighterStart && taken < target {
                taken += entries[low].weight
                low += 1
            }
        }
        return (low, taken)
    }

    private static func medianOfThree(_ a: Double, _ b: Double, _ c: Double) -> Double {
        max(min(a, b), min(max(a, b), c))
    }

    /// The first index of the largest logit; NaN never wins. Sixteen lanes at a time: greedy
    /// decoding runs it on the step's critical path, where the other threads wait.
    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        let n = logits.count, full = n & ~15, p = UnsafeRawPointer(logits.baseAddress!)
        // Per lane, the largest logit and its first index.
        var lanes = SIMD16<Float>(repeating: -.infinity), at = SIMD16<Int32>(repeating: 0)
        var index = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        for i in stride(from: 0, to: full, by: 16) {
            let v = p.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            let greater = v .> lanes
            lanes.replace(with: v, where: greater)
            at.replace(with: index, where: greater)
            index &+= 16
        }
        var best = 0, top = -Float.infinity
        // Lanes left at minus infinity keep index 0, which is also the answer when nothing beats it.
        for k in 0..<16 where lanes[k] > top || (lanes[k] == top && Int(at[k]) < best) {
            (best, top) = (Int(at[k]), lanes[k])
        }
        for i in full..<n where logits[i] > top { (best, top) = (i, logits[i]) }
        return best
    }

    /// Higher logit first; the lower id on ties, as argmax. NaN ranks last.
    private static func precedes(_ a: (index: Int, logit: Float), _ b: (index: Int, logit: Float)) -> Bool {
        a.logit > b.logit || (a.logit == b.logit && a.index < b.index)
    }

    /// Ids of the `count` most likely tokens in O(n log count): a min-heap
    /// holds the best so far and most tokens fail one comparison at its root.
    static func largest(_ count: Int, of logits: UnsafeBufferPointer<Float>) -> [Int] {
        var heap: [(index: Int, logit: Float)] = []
        heap.reserveCapacity(count)
        func siftDown(_ start: Int) {
            var parent = start
            while true {
                let left = 2 * parent + 1, right = left + 1
                var worst = parent
                if left < heap.count && precedes(heap[worst], heap[left]) { worst = left }
                if right < heap.count && precedes(heap[worst], heap[right]) { worst = right }
                guard worst != parent else { return }
                heap.swapAt(parent, worst)
                parent = worst
            }
        }
        for (index, logit) in logits.enumerated() {
            let candidate = (index: index, logit: logit.isNaN ? -Float.infinity : logit)
            if heap.count < count {
                heap.append(candidate)
                if heap.count == count { for node in stride(from: count / 2 - 1, through: 0, by: -1) { siftDown(node) } }
            } else if precedes(candidate, heap[0]) {
                heap[0] = candidate
                siftDown(0)
            }
        }
        return heap.map(\.index)
    }
}
