import Checkpoint
import Foundation
import Model
import Presets
import Testing

/// The bytes a step reads, which decode rooflines divide bandwidth by.
@Suite struct WeightBytesTests {
    @Test func aStepReadsEachChosenExpertOnceAndAnEmbeddingRowPerToken() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-weight-bytes-\(getpid())")
        try SyntheticCheckpoint.write(preset: .tiny, to: dir, seed: 1)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try DeepseekModel(checkpoint: try Checkpoint(directory: dir))
        let c = model.config
        let moeLayers = c.moeLayers.count
        let expertBytes = 3 * c.moeIntermediateSize * c.hiddenSize * 2 // gate, up and down projections in bf16
        let oneToken = model.weightBytesPerStep(tokens: 1) { _ in c.numExpertsPerTok }
        // One more distinct expert in every MoE layer: that expert's bytes once per layer.
        #expect(model.weightBytesPerStep(tokens: 1) { _ in c.numExpertsPerTok + 1 } - oneToken == moeLayers * expertBytes)
        // Two tokens that chose the same experts share their weights: one more embedding row only.
        #expect(model.weightBytesPerStep(tokens: 2) { _ in c.numExpertsPerTok } - oneToken == c.hiddenSize * 2)
        // Dense layers are not asked about experts.
        var asked: [Int] = []
        _ = model.weightBytesPerStep(tokens: 1) { asked.append($0); return 0 }
        #expect(asked == c.moeLayers)
    }
}
