import Engine
import MetricsTestKit
@testable import Serving
import Testing

/// The per-layer MoE gauges a cluster's server exports.
@Suite struct ServingMetricsLayers {
    static func sample(_ layer: Int, rows: [Int]) -> MoELayerSample {
        MoELayerSample(layer: layer, dispatchSeconds: 0.002, combineSeconds: 0.004, rowsPerExpertRank: rows)
    }

    /// Balancedness is mean ÷ max of the rows each expert rank received over the window (the
    /// inverse of the imbalance gauge), per layer.
    @Test func balancednessPerLayer() throws {
        let test = TestMetrics()
        let metrics = ServingMetrics(factory: test)
        // Layer 1: rows per rank summed over two steps 4+8, 2+2, 6+2 = 12, 4, 8: mean 8, max 12.
        metrics.record(layers: [Self.sample(1, rows: [4, 2, 6]), Self.sample(2, rows: [5, 5, 5])])
        metrics.record(layers: [Self.sample(1, rows: [8, 2, 2])])
        let balanced1 = try test.expectMeter("conclave_moe_expert_balancedness", [("layer", "1")])
        let imbalance1 = try test.expectMeter("conclave_moe_expert_load_imbalance", [("layer", "1")])
        #expect(balanced1.lastValue == 8.0 / 12)
        #expect(imbalance1.lastValue == 12.0 / 8)
        #expect(try test.expectMeter("conclave_moe_expert_balancedness", [("layer", "2")]).lastValue == 1)
        #expect(try test.expectMeter("conclave_moe_dispatch_seconds", [("layer", "1")]).lastValue == 0.002)
    }

    /// Only the last `layerWindow` steps count.
    @Test func windowForgetsOldSteps() throws {
        let test = TestMetrics()
        let metrics = ServingMetrics(factory: test)
        metrics.record(layers: [Self.sample(3, rows: [100, 0])])
        for _ in 0..<ServingMetrics.layerWindow { metrics.record(layers: [Self.sample(3, rows: [1, 3])]) }
        #expect(try test.expectMeter("conclave_moe_expert_balancedness", [("layer", "3")]).lastValue == 2.0 / 3)
    }
}
