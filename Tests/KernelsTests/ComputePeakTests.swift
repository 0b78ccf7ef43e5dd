import Kernels
import Testing

/// `conclave bench`'s bf16 peak on a tiny product: that it runs, not how fast.
@Suite struct ComputePeakTests {
    @Test func bf16MatmulRunsOnTheCallingThreadAndOnAPool() throws {
        for pool in [nil, ComputePool.shared] as [ComputePool?] {
            let peak = try #require(ComputePeak.bf16Matmul(size: 64, pool: pool))
            #expect(peak.flopsPerSecond.isFinite && peak.flopsPerSecond > 0)
            #expect(peak.implementation != "?")
        }
    }
}
