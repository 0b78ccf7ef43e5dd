import Foundation

/// A DeepSeek model's `config.json`, parsed once into one typed value.
///
/// Field names are the camelCase forms of DeepSeek's own keys; defaults are those of
/// transformers' `DeepseekV3Config` / `DeepseekV2Config` (see `init(defaultsFor:)`).
/// Nothing after parsing reads the raw JSON. Parse with `ModelConfig(contentsOf:)` or
/// `ModelConfig(jsonData:source:)`; write DeepSeek's spelling back with `jsonData()`.
public struct ModelConfig: Sendable, Equatable {
    /// Which DeepSeek generation (`architectures[0]`, or `model_type` when that is absent).
    public var architecture: Architecture
    /// Number of token ids (rows of the embedding and of `lm_head`).
    public var vocabSize: Int
    /// Width of the residual stream.
    public var hiddenSize: Int
    /// Hidden width of the dense MLP used by the first `firstKDenseReplace` layers.
    public var intermediateSize: Int
    /// Hidden width of one routed (and one shared) expert.
    public var moeIntermediateSize: Int
    /// Number of transformer blocks served; checkpoint layers at or past this index (MTP) are ignored.
    public var numHiddenLayers: Int
    /// Number of attention heads.
    public var numAttentionHeads: Int
    /// Number of leading layers that use the dense MLP instead of MoE.
    public var firstKDenseReplace: Int
    /// Every `moeLayerFreq`-th layer (from `firstKDenseReplace` on) is an MoE layer.
    public var moeLayerFreq: Int
    /// Number of routed experts per MoE layer; 0 means no MoE layers at all.
    public var nRoutedExperts: Int
    /// Number of shared experts, fused into one MLP of width `nSharedExperts × moeIntermediateSize`.
    public var nSharedExperts: Int
    /// Routed experts chosen per token.
    public var numExpertsPerTok: Int
    /// Number of expert groups for group-limited routing.
    public var nGroup: Int
    /// Number of groups a token may route into.
    public var topkGroup: Int
    /// How the gate picks experts.
    public var topkMethod: TopkMethod
    /// How the gate turns logits into scores.
    public var scoringFunc: ScoringFunc
    /// Whether the chosen experts' weights are renormalised to sum to one.
    public var normTopkProb: Bool
    /// Multiplier applied to the routed experts' weights.
    public var routedScalingFactor: Double
    /// Rank of the query low-rank compression; nil means a plain `q_proj`.
    public var qLoraRank: Int?
    /// Rank of the compressed key/value latent.
    public var kvLoraRank: Int
    /// Per-head size of the query/key part without rotary embedding.
    public var qkNopeHeadDim: Int
    /// Per-head size of the query/key part with rotary embedding.
    public var qkRopeHeadDim: Int
    /// Per-head size of the values.
    public var vHeadDim: Int
    /// Rotary embedding: base and optional YaRN scaling.
    public var rope: RopeConfig
    /// Whether the rope dims of q/k are stored interleaved (pairs) as in DeepSeek's checkpoints.
    public var ropeInterleave: Bool
    /// Epsilon of every RMSNorm.
    public var rmsNormEps: Double
    /// Whether `lm_head` shares the embedding matrix.
    public var tieWordEmbeddings: Bool
    /// Longest context the model is configured for.
    public var maxPositionEmbeddings: Int
    /// Beginning-of-sequence token id, if any.
    public var bosTokenId: Int?
    /// End-of-sequence token ids (`eos_token_id` may be one id or a list).
    public var eosTokenIds: [Int]
    /// Activation of the MLPs; only "silu" is supported.
    public var hiddenAct: String
    /// Whether attention projections carry biases; only false is supported.
    public var attentionBias: Bool
    /// Tile of one FP8 scale (`quantization_config.weight_block_size`), nil when not FP8-quantised.
    public var fp8BlockSize: BlockSize?
    /// `torch_dtype` (or transformers 5's `dtype`) as written, e.g. "bfloat16".
    public var torchDtype: String?

    /// Size of a query/key head: `qkNopeHeadDim + qkRopeHeadDim`.
    public var qkHeadDim: Int { qkNopeHeadDim + qkRopeHeadDim }

    /// Whether `layer` uses routed experts (DeepSeek's own rule).
    public func isMoELayer(_ layer: Int) -> Bool {
        nRoutedExperts > 0 && layer >= firstKDenseReplace && layer % moeLayerFreq == 0
    }

    /// The layers that use routed experts, in order.
    public var moeLayers: [Int] { (0..<numHiddenLayers).filter(isMoELayer) }

    /// Number of experts in one routing group.
    public var expertsPerGroup: Int { nGroup > 0 ? nRoutedExperts / nGroup : 0 }

    /// Floats per position and layer in the latent cache: `c_kv` and `k_pe`
    /// (`kv_lora_rank + qk_rope_head_dim` values) padded with zeros to whole 64-value blocks,
    /// so that attention scores run on the exact kernels' vector blocks alone (DeepSeek-V3's
    /// 576 needs no padding).
    public var latentCacheRowFloats: Int { (kvLoraRank + qkRopeHeadDim + 63) / 64 * 64 }
}

extension ModelConfig {
    /// The DeepSeek generations this engine serves.
    public enum Architecture: String, Sendable, CaseIterable {
        case deepseekV3 = "DeepseekV3ForCausalLM"
        case deepseekV2 = "DeepseekV2ForCausalLM"

        /// The `model_type` value of this architecture.
        public var modelType: String {
            switch self {
            case .deepseekV3: "deepseek_v3"
            case .deepseekV2: "deepseek_v2"
            }
        }
    }

    /// How the gate selects experts (`topk_method`).
    public enum TopkMethod: String, Sendable, CaseIterable {
        /// Top-k over all experts.
        case greedy = "greedy"
        /// Top-k groups by their best expert, then top-k experts inside them (DeepSeek-V2).
        case groupLimitedGreedy = "group_limited_greedy"
        /// Scores plus `e_score_correction_bias`, groups ranked by their top-2 sum (DeepSeek-V3).
        case noauxTC = "noaux_tc"
    }

    /// How the gate turns logits into scores (`scoring_func`).
    public enum ScoringFunc: String, Sendable, CaseIterable {
        case softmax
        case sigmoid
    }

    /// One FP8 scale covers a `rows × cols` tile of the weight.
    public struct BlockSize: Sendable, Equatable, CustomStringConvertible {
        public var rows: Int
        public var cols: Int
        public init(rows: Int, cols: Int) {
            self.rows = rows
            self.cols = cols
        }
        public var description: String { "[\(rows), \(cols)]" }
    }

    /// Rotary position embedding parameters.
    public struct RopeConfig: Sendable, Equatable {
        /// Base of the rotary frequencies (`rope_theta`).
        public var theta: Double
        /// YaRN context extension, nil for plain RoPE.
        public var yarn: Yarn?

        public init(theta: Double = 10_000, yarn: Yarn? = nil) {
            self.theta = theta
            self.yarn = yarn
        }
    }

    /// YaRN parameters (`rope_scaling` / `rope_parameters` with type "yarn").
    public struct Yarn: Sendable, Equatable {
        /// Context extension factor.
        public var factor: Double
        /// Context length the model was pretrained with.
        public var originalMaxPositionEmbeddings: Int
        /// Rotations above which dims are extrapolated (not interpolated).
        public var betaFast: Double
        /// Rotations below which dims are fully interpolated.
        public var betaSlow: Double
        /// Numerator mscale of the cos/sin scaling (DeepSeek default 1).
        public var mscale: Double
        /// Denominator mscale of the cos/sin scaling, and the softmax-scale mscale; 0 means none.
        public var mscaleAllDim: Double
        /// Whether the correction range is rounded to whole dims.
        public var truncate: Bool
        /// Explicit cos/sin scaling; when nil it is derived from `mscale`/`mscaleAllDim`.
        public var attentionFactor: Double?

        public init(factor: Double, originalMaxPositionEmbeddings: Int, betaFast: Double = 32, betaSlow: Double = 1,
                    mscale: Double = 1, mscaleAllDim: Double = 0, truncate: Bool = true, attentionFactor: Double? = nil) {
            self.factor = factor
            self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
            self.betaFast = betaFast
            self.betaSlow = betaSlow
            self.mscale = mscale
            self.mscaleAllDim = mscaleAllDim
            self.truncate = truncate
            self.attentionFactor = attentionFactor
        }

        /// YaRN's mscale: `0.1 · m · ln(factor) + 1`, or 1 when `factor ≤ 1`.
        public static func mscale(factor: Double, _ m: Double) -> Double {
            factor <= 1 ? 1 : 0.1 * m * Foundation.log(factor) + 1
        }

        /// Multiplier of the rotary cos/sin: `attentionFactor`, else mscale(mscale) / mscale(mscaleAllDim).
        public var cosSinScale: Double {
            attentionFactor ?? Yarn.mscale(factor: factor, mscale) / Yarn.mscale(factor: factor, mscaleAllDim)
        }

        /// Multiplier of the attention softmax scale: mscale(mscaleAllDim)², or 1 when `mscaleAllDim` is 0.
        public var softmaxScaleMultiplier: Double {
            guard mscaleAllDim != 0 else { return 1 }
            let m = Yarn.mscale(factor: factor, mscaleAllDim)
            return m * m
        }
    }
}

extension ModelConfig {
    /// transformers' defaults for `architecture` (DeepseekV3Config / DeepseekV2Config), with
    /// DeepSeek's defaults for the keys transformers does not model (`moe_layer_freq`,
    /// `scoring_func`, and `topk_method` for V3).
    public init(defaultsFor architecture: Architecture) {
        self.architecture = architecture
        switch architecture {
        case .deepseekV3:
            vocabSize = 129_280; hiddenSize = 7168; intermediateSize = 18_432; moeIntermediateSize = 2048
            numHiddenLayers = 61; numAttentionHeads = 128; firstKDenseReplace = 3
            nRoutedExperts = 256; nSharedExperts = 1; numExpertsPerTok = 8; nGroup = 8; topkGroup = 4
            topkMethod = .noauxTC; scoringFunc = .sigmoid; normTopkProb = true; routedScalingFactor = 2.5
            maxPositionEmbeddings = 4096; bosTokenId = 0; eosTokenIds = [1]
        case .deepseekV2:
            vocabSize = 102_400; hiddenSize = 4096; intermediateSize = 11_008; moeIntermediateSize = 1407
            numHiddenLayers = 32; numAttentionHeads = 32; firstKDenseReplace = 0
            // transformers leaves n_group, topk_group and num_experts_per_tok unset for V2.
            nRoutedExperts = 64; nSharedExperts = 2; numExpertsPerTok = 0; nGroup = 1; topkGroup = 1
            topkMethod = .greedy; scoringFunc = .softmax; normTopkProb = false; routedScalingFactor = 1
            maxPositionEmbeddings = 2048; bosTokenId = 1; eosTokenIds = [2]
        }
        moeLayerFreq = 1
        qLoraRank = 1536; kvLoraRank = 512; qkNopeHeadDim = 128; qkRopeHeadDim = 64; vHeadDim = 128
        rope = RopeConfig()
        ropeInterleave = true
        rmsNormEps = 1e-6
        tieWordEmbeddings = false
        hiddenAct = "silu"
        attentionBias = false
        fp8BlockSize = nil
        torchDtype = nil
    }
}
