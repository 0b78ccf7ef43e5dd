import Checkpoint
import Cluster
import Testing

/// Which checkpoint tensors each role loads (what `conclave shard` copies and start-up checks).
@Suite struct RankTensorsByRole {
    /// Three decoder layers (0 dense, 1-2 MoE with 4 experts), FP8 experts with their scales,
    /// and a multi-token-prediction layer 3 no rank runs.
    static let config: ModelConfig = {
        var c = ModelConfig(defaultsFor: .deepseekV3)
        c.numHiddenLayers = 3
        c.firstKDenseReplace = 1
        c.nRoutedExperts = 4
        return c
    }()

    static func experts(_ ids: [Int], layers: [Int] = [1, 2]) -> Set<String> {
        Set(layers.flatMap { l in
            ids.flatMap { e in
                ["gate_proj", "up_proj", "down_proj"].flatMap {
                    ["model.layers.\(l).mlp.experts.\(e).\($0).weight", "model.layers.\(l).mlp.experts.\(e).\($0).weight_scale_inv"]
                }
            }
        })
    }

    static let gates: Set<String> = Set([1, 2].flatMap {
        ["model.layers.\($0).mlp.gate.weight", "model.layers.\($0).mlp.gate.e_score_correction_bias"]
    })

    static let attention: Set<String> = Set(["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                                             "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_a_proj.weight",
                                             "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                                             "model.layers.0.mlp.down_proj.weight"]
        + [1, 2].flatMap { l in
            ["model.layers.\(l).self_attn.kv_b_proj.weight", "model.layers.\(l).self_attn.kv_b_proj.weight_scale_inv",
             "model.layers.\(l).post_attention_layernorm.weight"]
                + ["gate_proj", "up_proj", "down_proj"].map { "model.layers.\(l).mlp.shared_experts.\($0).weight" }
        })

    static let multiTokenPrediction: Set<String> = ["model.layers.3.eh_proj.weight", "model.layers.3.embed_tokens.weight",
                                                    "model.layers.3.mlp.experts.0.up_proj.weight", "model.layers.3.mlp.gate.weight"]

    static let all = gates.union(attention).union(experts(Array(0..<4))).union(multiTokenPrediction)

    @Test func routerLoadsTheGatesOnly() {
        let router = RankTensors(role: .router, experts: [], config: Self.config, available: Self.all)
        #expect(Set(router.names) == Self.gates)
        #expect(router.names == router.names.sorted())
        #expect(router.missing.isEmpty)
    }

    @Test func attentionLoadsEverythingButGatesAndRoutedExperts() {
        let attention = RankTensors(role: .attention, experts: [], config: Self.config, available: Self.all)
        #expect(Set(attention.names) == Self.attention, "dense layer 0's mlp.gate_proj and the shared experts are attention's")
        #expect(attention.missing.isEmpty)
    }

    @Test func expertRankLoadsItsExpertsWithTheirScales() {
        let expert = RankTensors(role: .expert, experts: [3, 1], config: Self.config, available: Self.all)
        #expect(Set(expert.names) == Self.experts([1, 3]))
        #expect(expert.missing.isEmpty)
    }

    /// With per-layer placements an expert rank maps each layer's own experts and nothing more;
    /// a layer where it holds nothing costs it nothing; what it lacks is named per layer.
    @Test func expertRankLoadsEachLayersOwnExperts() {
        let perLayer: [Int: [Int]] = [1: [0, 3], 2: []]
        let expert = RankTensors(role: .expert, experts: { perLayer[$0]! }, config: Self.config, available: Self.all)
        #expect(Set(expert.names) == Self.experts([0, 3], layers: [1]))
        #expect(expert.missing.isEmpty)
        let lacking = Self.all.subtracting(["model.layers.1.mlp.experts.3.up_proj.weight", "model.layers.2.mlp.experts.3.up_proj.weight"])
        #expect(RankTensors(role: .expert, experts: { perLayer[$0]! }, config: Self.config, available: lacking).missing
                == ["model.layers.1.mlp.experts.3.up_proj.weight"])
        // Replicas: two ranks may both load an expert of a layer.
        let a = RankTensors(role: .expert, experts: { [1: [0, 1], 2: [2, 3]][$0]! }, config: Self.config, available: Self.all)
        let b = RankTensors(role: .expert, experts: { [1: [1, 2, 3], 2: [0, 1, 3]][$0]! }, config: Self.config, available: Self.all)
        #expect(Set(a.names).intersection(b.names) == Self.experts([1], layers: [1]).union(Self.experts([3], layers: [2])))
    }

    /// Every tensor of a decoder layer belongs to exactly one role; the MTP layer to none.
    @Test func rolesPartitionTheDecoder() {
        let parts = [RankTensors(role: .router, experts: [], config: Self.config, available: Self.all),
                     RankTensors(role: .attention, experts: [], config: Self.config, available: Self.all),
                     RankTensors(role: .expert, experts: [0, 1], config: Self.config, available: Self.all),
                     RankTensors(role: .expert, experts: [2, 3], config: Self.config, available: Self.all)].map(\.names)
        #expect(parts.joined().count == Set(parts.joined()).count)
        #expect(Set(parts.joined()) == Self.all.subtracting(Self.multiTokenPrediction))
    }

    @Test func missingGateOrExpertTensorsAreNamed() {
        let available = Self.all.subtracting(["model.layers.2.mlp.gate.e_score_correction_bias",
                                              "model.layers.2.mlp.experts.3.down_proj.weight"])
        #expect(RankTensors(role: .router, experts: [], config: Self.config, available: available).missing
                == ["model.layers.2.mlp.gate.e_score_correction_bias"])
        #expect(RankTensors(role: .expert, experts: [2, 3], config: Self.config, available: available).missing
                == ["model.layers.2.mlp.experts.3.down_proj.weight"])
        #expect(RankTensors(role: .expert, experts: [0, 1], config: Self.config, available: available).missing.isEmpty)
        // Without noaux_tc the gate has no correction bias to miss.
        var greedy = Self.config
        greedy.topkMethod = .greedy
        #expect(RankTensors(role: .router, experts: [], config: greedy, available: available).missing.isEmpty)
    }
}
