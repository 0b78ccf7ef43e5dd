import Checkpoint

/// The project's own synthetic models: real DeepSeek-V3 layout, random weights.
/// `tiny` is the embedded default the demo runs; `bench-mid` is the benchmark model.
/// Their configs are mirrored in `configs/models/` (a test keeps the two equal).
public enum ModelPreset: String, CaseIterable, Sendable {
    case tiny
    case benchMid = "bench-mid"

    public var config: ModelConfig {
        switch self {
        case .tiny:
            Self.deepseekV3(vocab: 1024, hidden: 256, layers: 4, intermediate: 512, experts: 16, expertIntermediate: 128,
                            perToken: 4, groups: 4, topkGroups: 2, heads: 4, qLora: 128, kvLora: 64, nope: 32, rope: 16, value: 32)
        case .benchMid:
            Self.deepseekV3(vocab: 32000, hidden: 1024, layers: 8, intermediate: 2816, experts: 64, expertIntermediate: 512,
                            perToken: 6, groups: 8, topkGroups: 4, heads: 16, qLora: 384, kvLora: 256, nope: 64, rope: 32, value: 64)
        }
    }

    /// DeepSeek-V3's own settings (sigmoid scoring, `noaux_tc`, first layer dense, one
    /// shared expert) at the given sizes.
    private static func deepseekV3(vocab: Int, hidden: Int, layers: Int, intermediate: Int, experts: Int, expertIntermediate: Int,
                                   perToken: Int, groups: Int, topkGroups: Int, heads: Int, qLora: Int, kvLora: Int,
                                   nope: Int, rope: Int, value: Int) -> ModelConfig {
        var c = ModelConfig(defaultsFor: .deepseekV3)
        c.vocabSize = vocab
        c.hiddenSize = hidden
        c.numHiddenLayers = layers
        c.intermediateSize = intermediate
        c.nRoutedExperts = experts
        c.moeIntermediateSize = expertIntermediate
        c.numExpertsPerTok = perToken
        c.nGroup = groups
        c.topkGroup = topkGroups
        c.numAttentionHeads = heads
        c.qLoraRank = qLora
        c.kvLoraRank = kvLora
        c.qkNopeHeadDim = nope
        c.qkRopeHeadDim = rope
        c.vHeadDim = value
        c.firstKDenseReplace = 1
        c.torchDtype = "bfloat16"
        return c
    }
}
