import ServeBenchmark
import Testing

@Suite struct StatisticsTests {
    /// numpy.percentile([1, ..., 10], [50, 90, 99]) == [5.5, 9.1, 9.91]
    @Test func percentilesInterpolateLikeNumpy() {
        let values = (1...10).map(Double.init)
        #expect(abs(percentile(values, 50) - 5.5) < 1e-12)
        #expect(abs(percentile(values, 90) - 9.1) < 1e-12)
        #expect(abs(percentile(values, 99) - 9.91) < 1e-12)
        #expect(percentile(values, 0) == 1)
        #expect(percentile(values, 100) == 10)
    }

    /// numpy.percentile([15, 20, 35, 40, 50], [50, 90, 99]) == [35, 46, 49.6]
    @Test func percentilesOfAnOddCount() {
        let values = [15.0, 20, 35, 40, 50]
        #expect(percentile(values, 50) == 35)
        #expect(abs(percentile(values, 90) - 46) < 1e-12)
        #expect(abs(percentile(values, 99) - 49.6) < 1e-12)
        #expect(percentile([7], 99) == 7)
    }

    @Test func latencyStatsSortAndConvertToMilliseconds() throws {
        let stats = try #require(LatencyStats(seconds: [0.050, 0.015, 0.040, 0.020, 0.035]))
        #expect(abs(stats.mean - 32) < 1e-9)
        #expect(abs(stats.p50 - 35) < 1e-9)
        #expect(abs(stats.p90 - 46) < 1e-9)
        #expect(abs(stats.p99 - 49.6) < 1e-9)
        #expect(LatencyStats(seconds: []) == nil)
    }
}
