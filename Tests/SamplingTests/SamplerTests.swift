import Foundation
import Testing
@testable import Sampling

private func sample(_ sampler: inout Sampler, _ logits: [Float]) -> Int {
    logits.withUnsafeBufferPointer { sampler.sample(logits: $0) }
}

/// Deterministic pseudo-random logits in [-8, 8).
private func randomLogits(count: Int, seed: UInt64) -> [Float] {
    var random = RandomSource(seed: seed)
    return (0..<count).map { _ in Float(random.nextUnit() * 16 - 8) }
}

/// Draw counts per id over `draws` samples.
private func histogram(_ parameters: SamplingParameters, _ logits: [Float], draws: Int) throws -> [Int: Int] {
    var sampler = try Sampler(parameters)
    var counts: [Int: Int] = [:]
    for _ in 0..<draws { counts[sample(&sampler, logits), default: 0] += 1 }
    return counts
}

@Suite struct SamplerTests {
    @Test func greedyIsArgmaxWithLowestIdOnTies() throws {
        var sampler = try Sampler(.greedy)
        #expect(sample(&sampler, [0.1, 3, -2, 3, 1]) == 1)
        #expect(sample(&sampler, [.nan, -1, 5, .nan]) == 2)
        let logits = randomLogits(count: 129_280, seed: 7)
        #expect(sample(&sampler, logits) == logits.indices.max { logits[$0] < logits[$1] })
    }

    /// The sixteen-lane argmax against the definition: ties within and across blocks, NaN in
    /// the blocks, the maximum in the tail, nothing above minus infinity.
    @Test func greedyMatchesDefinitionOnEveryLayout() throws {
        func definition(_ logits: [Float]) -> Int {
            var best = 0
            for i in logits.indices where logits[i] > logits[best] || (logits[best].isNaN && !logits[i].isNaN && logits[i] > -.infinity) { best = i }
            return best
        }
        var sampler = try Sampler(.greedy)
        var cases: [[Float]] = [[Float](repeating: -.infinity, count: 40), [Float](repeating: .nan, count: 33)]
        for (count, peaks) in [(50, [37, 5]), (50, [20, 21]), (64, [63]), (67, [65, 3]), (47, [46])] {
            var logits = (0..<count).map { Float(($0 * 13) % 7) - 3 }
            logits[1] = .nan
            for p in peaks { logits[p] = 9 }
            cases.append(logits)
        }
        for logits in cases { #expect(sample(&sampler, logits) == definition(logits), "\(logits)") }
    }

    @Test func sameSeedGivesSameTokens() throws {
        let logits = randomLogits(count: 32_000, seed: 1).map { $0 / 4 }
        let parameters = SamplingParameters(temperature: 0.8, topK: 50, topP: 0.95, seed: 42)
        var a = try Sampler(parameters), b = try Sampler(parameters)
        var other = try Sampler(SamplingParameters(temperature: 0.8, topK: 50, topP: 0.95, seed: 43))
        let first = (0..<200).map { _ in sample(&a, logits) }
        #expect(first == (0..<200).map { _ in sample(&b, logits) })
        #expect(first != (0..<200).map { _ in sample(&other, logits) })
    }

    @Test func topKOneIsGreedy() throws {
        var topOne = try Sampler(SamplingParameters(temperature: 1.5, topK: 1, seed: 3))
        for seed in 0..<20 as Range<UInt64> {
            let logits = randomLogits(count: 1000, seed: seed)
            #expect(sample(&topOne, logits) == Sampler.argmax(logits.withUnsafeBufferPointer { $0 }))
        }
    }

    @Test func topKDrawsOnlyTheKMostLikely() throws {
        let logits: [Float] = [1, 5, 2, 4, 3, 0]
        let counts = try histogram(SamplingParameters(temperature: 2, topK: 3, seed: 9), logits, draws: 5000)
        #expect(Set(counts.keys) == [1, 3, 4])
    }

    @Test func temperatureSamplingFollowsSoftmax() throws {
        let probabilities: [Double] = [0.5, 0.3, 0.15, 0.05]
        let logits = probabilities.map { Float(log($0)) }
        let draws = 40_000
        let counts = try histogram(SamplingParameters(temperature: 1, seed: 11), logits, draws: draws)
        for (id, p) in probabilities.enumerated() {
            #expect(abs(Double(counts[id, default: 0]) / Double(draws) - p) < 0.01)
        }
    }

    @Test func topPKeepsSmallestSetReachingP() throws {
        // Cumulative 0.5, 0.8, 0.95, 1: p = 0.75 keeps ids 0 and 1, renormalized.
        let logits = [0.5, 0.3, 0.15, 0.05].map { Float(log($0)) }
        let draws = 40_000
        let counts = try histogram(SamplingParameters(temperature: 1, topP: 0.75, seed: 5), logits, draws: draws)
        #expect(Set(counts.keys) == [0, 1])
        #expect(abs(Double(counts[0, default: 0]) / Double(draws) - 0.625) < 0.01)
    }

    @Test func topPOnLargeVocabularyStaysInNucleus() throws {
        let logits = randomLogits(count: 129_280, seed: 21)
        let p: Float = 0.9
        // Reference nucleus: sort everything.
        let order = logits.indices.sorted { logits[$0] > logits[$1] }
        let maxLogit = logits[order[0]]
        let weights = order.map { exp(Double(logits[$0] - maxLogit)) }
        let total = weights.reduce(0, +)
        var cumulative = 0.0, size = 0
        while cumulative < Double(p) * total { cumulative += weights[size]; size += 1 }
        let nucleus = Set(order.prefix(size))

        let counts = try histogram(SamplingParameters(temperature: 1, topP: p, seed: 8), logits, draws: 300)
        #expect(Set(counts.keys).isSubset(of: nucleus))
        #expect(counts.count > 1)
    }

    @Test func rejectsInvalidParameters() {
        #expect(throws: SamplingError.invalidTemperature(-1)) { try Sampler(SamplingParameters(temperature: -1)) }
        #expect(throws: SamplingError.negativeTopK(-2)) { try Sampler(SamplingParameters(topK: -2)) }
        #expect(throws: SamplingError.topPOutOfRange(0)) { try Sampler(SamplingParameters(topP: 0)) }
        #expect(throws: SamplingError.topPOutOfRange(1.5)) { try Sampler(SamplingParameters(topP: 1.5)) }
    }
}
