import Foundation
import ServeBenchmark
import Testing

@Suite struct ScheduleAndPromptTests {
    @Test func scheduleRepeatsForASeedAndDiffersAcrossSeeds() {
        let a = ArrivalSchedule.offsets(count: 100, rate: .perSecond(10), seed: 7)
        #expect(a == ArrivalSchedule.offsets(count: 100, rate: .perSecond(10), seed: 7))
        #expect(a != ArrivalSchedule.offsets(count: 100, rate: .perSecond(10), seed: 8))
        #expect(a.first == 0)
        #expect(zip(a, a.dropFirst()).allSatisfy { $0 <= $1 })
    }

    /// Mean of n exponential gaps: standard error (1/rate)/√n, 0.7% here, so 5% is far out.
    @Test func meanGapIsOneOverTheRate() {
        let rate = 20.0
        let n = 20_000
        let offsets = ArrivalSchedule.offsets(count: n + 1, rate: .perSecond(rate), seed: 1)
        let meanGap = offsets.last! / Double(n)
        #expect(abs(meanGap - 1 / rate) < 0.05 / rate)
        // Exponential, not uniform: the coefficient of variation of the gaps is ≈ 1.
        let gaps = zip(offsets.dropFirst(), offsets).map { $0 - $1 }
        let deviation = sqrt(gaps.map { ($0 - meanGap) * ($0 - meanGap) }.reduce(0, +) / Double(n))
        #expect(abs(deviation / meanGap - 1) < 0.05)
    }

    @Test func unlimitedRateSendsAllAtOnce() {
        #expect(ArrivalSchedule.offsets(count: 5, rate: .unlimited, seed: 3) == [0, 0, 0, 0, 0])
    }

    @Test func rateParsing() {
        #expect(RequestRate(parsing: "inf") == .unlimited)
        #expect(RequestRate(parsing: "2.5") == .perSecond(2.5))
        #expect(RequestRate(parsing: "0") == nil)
        #expect(RequestRate(parsing: "-1") == nil)
        #expect(RequestRate(parsing: "fast") == nil)
    }

    @Test func promptsAreRepeatableDistinctAndInRange() {
        let source = PromptSource(length: 32, seed: 5)
        let prompts = (0..<2000).map(source.tokens(for:))
        #expect(prompts.allSatisfy { $0.count == 32 && $0.allSatisfy(PromptSource.ids.contains) })
        #expect(Set(prompts).count == prompts.count)
        #expect(prompts[3] == source.tokens(for: 3))
        #expect(prompts[3] != PromptSource(length: 32, seed: 6).tokens(for: 3))
        // Even one-token prompts differ, up to 900 requests.
        let short = PromptSource(length: 1, seed: 5)
        #expect(Set((0..<900).map(short.tokens(for:))).count == 900)
    }
}
