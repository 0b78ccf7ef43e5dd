import Checkpoint
import Foundation
import Presets
import Testing

@Suite struct PresetTests {
    /// configs/models/ mirrors the presets the binary embeds.
    @Test(arguments: ModelPreset.allCases)
    func configsFolderMatchesEmbeddedPresets(_ preset: ModelPreset) throws {
        let file = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("configs/models/\(preset.rawValue).json")
        let committed = try ModelConfig(contentsOf: file)
        #expect(committed == preset.config)
    }

    @Test func benchMidIsTheSpecifiedModel() throws {
        let c = ModelPreset.benchMid.config
        #expect(c.architecture == .deepseekV3 && c.vocabSize == 32000 && c.hiddenSize == 1024 && c.numHiddenLayers == 8)
        #expect(c.firstKDenseReplace == 1 && c.intermediateSize == 2816 && c.nRoutedExperts == 64 && c.moeIntermediateSize == 512)
        #expect(c.numExpertsPerTok == 6 && c.nSharedExperts == 1 && c.nGroup == 8 && c.topkGroup == 4 && c.numAttentionHeads == 16)
        #expect(c.qLoraRank == 384 && c.kvLoraRank == 256 && c.qkNopeHeadDim == 64 && c.qkRopeHeadDim == 32 && c.vHeadDim == 64)
    }

    /// The tiny model is written, loads, and the same seed writes the same bytes.
    @Test func tinyIsDeterministicAndLoads() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-preset-\(getpid())")
        let a = root.appendingPathComponent("a"), b = root.appendingPathComponent("b")
        try SyntheticCheckpoint.write(preset: .tiny, to: a, seed: 7)
        try SyntheticCheckpoint.write(preset: .tiny, to: b, seed: 7)
        defer { try? FileManager.default.removeItem(at: root) }
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            #expect(try Data(contentsOf: a.appendingPathComponent(name)) == Data(contentsOf: b.appendingPathComponent(name)), "\(name)")
        }
        let checkpoint = try Checkpoint(directory: a)
        #expect(checkpoint.config.nRoutedExperts == 16)
        #expect(checkpoint.contains("model.layers.1.mlp.experts.15.down_proj.weight"))
        #expect(try checkpoint.info("model.layers.1.mlp.experts.15.down_proj.weight").dtype == .bf16)
    }
}
