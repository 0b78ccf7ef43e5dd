/// The project's own synthetic models: real DeepSeek-V3 layout, random weights.
/// `tiny` is the embedded default the demo runs; `bench-mid` is the benchmark model.
/// Their configs are mirrored in `configs/models/` (a test keeps the two equal).
public enum ModelPreset: String, CaseIterable, Sendable {
    case tiny
    case benchMid = "bench-mid"

    /// config.json in DeepSeek-V3's published spelling.
    public var config: [String: Any] {
        switch self {
        case .tiny:
            Self.deepseekV3(vocab: 1024, hidden: 256, layers: 4, intermediate: 512, experts: 16, expertIntermediate: 128,
                            perToken: 4, groups: 4, topkGroups: 2, heads: 4, qLora: 128, kvLora: 64, nope: 32, rope: 16, value: 32)
        case .benchMid:
            Self.deepseekV3(vocab: 32000, hidden: 1024, layers: 8, intermediate: 2816, experts: 64, expertIntermediate: 512,
                            perToken: 6, groups: 8, topkGroups: 4, heads: 16, qLora: 384, kvLora: 256, nope: 64, rope: 32, value: 64)
        }
    }

    private static func deepseekV3(vocab: Int, hidden: Int, layers: Int, intermediate: Int, experts: Int, expertIntermediate: Int,
                                   perToken: Int, groups: Int, topkGroups: Int, heads: Int, qLora: Int, kvLora: Int,
                                   nope: Int, rope: Int, value: Int) -> [String: Any] {
        [
            "architectures": ["DeepseekV3ForCausalLM"],
            "model_type": "deepseek_v3",
            "vocab_size": vocab,
            "hidden_size": hidden,
            "intermediate_size": intermediate,
            "moe_intermediate_size": expertIntermediate,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": heads,
            "first_k_dense_replace": 1,
            "moe_layer_freq": 1,
            "n_routed_experts": experts,
            "n_shared_experts": 1,
            "num_experts_per_tok": perToken,
            "n_group": groups,
            "topk_group": topkGroups,
            "topk_method": "noaux_tc",
            "scoring_func": "sigmoid",
            "norm_topk_prob": true,
            "routed_scaling_factor": 2.5,
            "q_lora_rank": qLora,
            "kv_lora_rank": kvLora,
            "qk_nope_head_dim": nope,
            "qk_rope_head_dim": rope,
            "v_head_dim": value,
            "hidden_act": "silu",
            "max_position_embeddings": 4096,
            "rope_theta": 10000,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": false,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "torch_dtype": "bfloat16",
            "attention_bias": false,
        ]
    }
}
