import Checkpoint
import Foundation
import Sampling

/// The project's own synthetic models: real DeepSeek-V3 layout, random weights.
/// `tiny` is the embedded default the demo runs; `bench-mid` is the benchmark model;
/// `bench-mid-skewed` is bench-mid with the skewed routing of real traffic (`routingSkew`).
/// Their configs are mirrored in `configs/models/` (a test keeps the two equal).
public enum ModelPreset: String, CaseIterable, Sendable {
    case tiny
    case benchMid = "bench-mid"
    case benchMidSkewed = "bench-mid-skewed"

    public var config: ModelConfig {
        switch self {
        case .tiny:
            Self.deepseekV3(vocab: 1024, hidden: 256, layers: 4, intermediate: 512, experts: 16, expertIntermediate: 128,
                            perToken: 4, groups: 4, topkGroups: 2, heads: 4, qLora: 128, kvLora: 64, nope: 32, rope: 16, value: 32)
        case .benchMid, .benchMidSkewed:
            Self.deepseekV3(vocab: 32000, hidden: 1024, layers: 8, intermediate: 2816, experts: 64, expertIntermediate: 512,
                            perToken: 6, groups: 8, topkGroups: 4, heads: 16, qLora: 384, kvLora: 256, nope: 64, rope: 32, value: 64)
        }
    }

    /// How the preset skews its gates, or nil: its routing is as even as random weights make it.
    public var routingSkew: RoutingSkew? {
        switch self {
        case .tiny, .benchMid: nil
        case .benchMidSkewed: RoutingSkew()
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

/// Skewed routing as real MoE traffic shows it — a few experts of each layer get most
/// tokens, and which ones differs from layer to layer — made through the gate's
/// `e_score_correction_bias`, which DeepSeek-V3 adds to the scores for choosing experts
/// only (the combine weights stay the unbiased scores).
///
/// Each MoE layer ranks its experts in its own seeded random order (its hot set) and adds
/// a Zipf–Mandelbrot term to the expert at rank `r` (0 = hottest):
/// `strength · (offset / (r + offset))^exponent`, minus the term's mean over the experts.
/// With the defaults on bench-mid (sigmoid scores, 64 experts, top-6 among 4 of 8 groups) the
/// 8 hottest experts of a layer take about half of its tokens (PresetTests measures it).
public struct RoutingSkew: Sendable, Equatable {
    public var strength: Float = 0.8
    public var offset: Float = 2
    public var exponent: Float = 1

    public init() {}

    /// Experts of `layer` from hottest to coldest: a permutation drawn from `seed` and the layer.
    public func hotOrder(layer: Int, experts: Int, seed: UInt64) -> [Int] {
        var rng = RandomSource(seed: seed ^ (0xD1B5_4A32_D192_ED03 &* UInt64(layer + 1)))
        var order = Array(0..<experts)
        for i in stride(from: experts - 1, to: 0, by: -1) {
            order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        return order
    }

    /// What the skew adds to each expert's correction bias in `layer`, by expert id.
    public func biasOffsets(layer: Int, experts: Int, seed: UInt64) -> [Float] {
        var offsets = [Float](repeating: 0, count: experts)
        for (rank, expert) in hotOrder(layer: layer, experts: experts, seed: seed).enumerated() {
            offsets[expert] = strength * powf(offset / (Float(rank) + offset), exponent)
        }
        let mean = offsets.reduce(0, +) / Float(experts)
        return offsets.map { $0 - mean }
    }
}
