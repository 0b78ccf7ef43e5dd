import Foundation
import Testing
@testable import Checkpoint

/// DeepSeek-V3's published config.json (trimmed of keys the engine ignores, plus a few it must ignore).
let deepseekV3Published = """
{
  "architectures": ["DeepseekV3ForCausalLM"],
  "attention_bias": false, "attention_dropout": 0.0,
  "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekV3Config"},
  "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1,
  "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02,
  "intermediate_size": 18432, "kv_lora_rank": 512, "max_position_embeddings": 163840,
  "model_type": "deepseek_v3", "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8,
  "n_routed_experts": 256, "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 128,
  "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128, "num_nextn_predict_layers": 1,
  "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]},
  "rms_norm_eps": 1e-06,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                   "original_max_position_embeddings": 4096, "type": "yarn"},
  "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "tie_word_embeddings": false,
  "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16", "transformers_version": "4.33.1",
  "use_cache": true, "v_head_dim": 128, "vocab_size": 129280
}
"""

/// A small V3 config as transformers 5 writes it: rope_parameters, head_dim, dtype, no routing method keys.
let transformers5Style = """
{
  "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
  "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
  "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4,
  "n_routed_experts": 16, "n_shared_experts": 1, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2,
  "first_k_dense_replace": 1, "norm_topk_prob": true, "routed_scaling_factor": 2.5,
  "kv_lora_rank": 32, "q_lora_rank": 48, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
  "head_dim": 8, "rope_interleave": true,
  "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 256,
                      "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 0.707},
  "max_position_embeddings": 1024, "rms_norm_eps": 1e-06, "bos_token_id": 0, "eos_token_id": [1, 2],
  "tie_word_embeddings": false, "hidden_act": "silu", "attention_bias": false, "dtype": "float32",
  "transformers_version": "5.0.0"
}
"""

func parse(_ json: String, source: String = "test/config.json") throws -> ModelConfig {
    try ModelConfig(jsonData: Data(json.utf8), source: source)
}

/// `json` with `patch`'s keys replacing or adding top-level keys.
func patched(_ json: String, _ patch: [String: Any]) throws -> String {
    var o = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
    for (k, v) in patch { o[k] = v }
    return String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
}

@Suite struct ConfigParsing {
    @Test func deepseekPublishedSpelling() throws {
        let c = try parse(deepseekV3Published)
        #expect(c.architecture == .deepseekV3)
        #expect(c.vocabSize == 129_280 && c.hiddenSize == 7168 && c.intermediateSize == 18_432)
        #expect(c.moeIntermediateSize == 2048 && c.numHiddenLayers == 61 && c.numAttentionHeads == 128)
        #expect(c.firstKDenseReplace == 3 && c.moeLayerFreq == 1)
        #expect(c.nRoutedExperts == 256 && c.nSharedExperts == 1 && c.numExpertsPerTok == 8)
        #expect(c.nGroup == 8 && c.topkGroup == 4 && c.topkMethod == .noauxTC && c.scoringFunc == .sigmoid)
        #expect(c.normTopkProb && c.routedScalingFactor == 2.5)
        #expect(c.qLoraRank == 1536 && c.kvLoraRank == 512)
        #expect(c.qkNopeHeadDim == 128 && c.qkRopeHeadDim == 64 && c.vHeadDim == 128 && c.qkHeadDim == 192)
        #expect(c.rope.theta == 10_000)
        let y = try #require(c.rope.yarn)
        #expect(y.factor == 40 && y.originalMaxPositionEmbeddings == 4096 && y.betaFast == 32 && y.betaSlow == 1)
        #expect(y.mscale == 1 && y.mscaleAllDim == 1 && y.truncate && y.attentionFactor == nil)
        #expect(y.cosSinScale == 1)
        let m = 0.1 * log(40.0) + 1
        #expect(abs(y.softmaxScaleMultiplier - m * m) < 1e-12)
        #expect(c.ropeInterleave)
        #expect(c.rmsNormEps == 1e-6 && !c.tieWordEmbeddings && c.maxPositionEmbeddings == 163_840)
        #expect(c.bosTokenId == 0 && c.eosTokenIds == [1])
        #expect(c.hiddenAct == "silu" && !c.attentionBias)
        #expect(c.fp8BlockSize == ModelConfig.BlockSize(rows: 128, cols: 128))
        #expect(c.torchDtype == "bfloat16")
    }

    @Test func transformers5Spelling() throws {
        let c = try parse(transformers5Style)
        #expect(c.architecture == .deepseekV3)
        // No scoring_func/topk_method: V3 defaults.
        #expect(c.scoringFunc == .sigmoid && c.topkMethod == .noauxTC)
        // head_dim (= qk_rope_head_dim) is not a head size and is ignored.
        #expect(c.qkHeadDim == 24 && c.qkRopeHeadDim == 8)
        let y = try #require(c.rope.yarn)
        #expect(c.rope.theta == 10_000 && y.factor == 4 && y.originalMaxPositionEmbeddings == 256)
        #expect(y.mscale == 0.707 && y.mscaleAllDim == 0.707 && y.cosSinScale == 1)
        #expect(c.eosTokenIds == [1, 2])
        #expect(c.torchDtype == "float32")
        #expect(c.fp8BlockSize == nil)
        #expect(c.nRoutedExperts == 16 && c.nGroup == 4 && c.topkGroup == 2 && c.expertsPerGroup == 4)
    }

    @Test func defaultRopeTypeHasNoYarn() throws {
        let c = try parse(patched(transformers5Style, ["rope_parameters": ["rope_type": "default", "rope_theta": 50000]]))
        #expect(c.rope == ModelConfig.RopeConfig(theta: 50_000, yarn: nil))
        let d = try parse(patched(deepseekV3Published, ["rope_scaling": NSNull(), "rope_theta": 20000]))
        #expect(d.rope == ModelConfig.RopeConfig(theta: 20_000, yarn: nil))
    }

    @Test func yarnDefaultsAndRopeTypeKey() throws {
        let c = try parse(patched(transformers5Style, ["rope_parameters": ["rope_type": "yarn", "factor": 8]]))
        let y = try #require(c.rope.yarn)
        // original_max_position_embeddings defaults to max_position_embeddings; theta to 10000.
        #expect(c.rope.theta == 10_000 && y.factor == 8 && y.originalMaxPositionEmbeddings == 1024)
        #expect(y.betaFast == 32 && y.betaSlow == 1 && y.mscale == 1 && y.mscaleAllDim == 0 && y.truncate)
        #expect(abs(y.cosSinScale - (0.1 * log(8.0) + 1)) < 1e-12 && y.softmaxScaleMultiplier == 1)
        // rope_scaling may use "rope_type" too; a missing factor is max / original.
        let d = try parse(patched(deepseekV3Published, [
            "rope_scaling": ["rope_type": "yarn", "original_max_position_embeddings": 4096, "truncate": false, "attention_factor": 1.25],
        ]))
        let z = try #require(d.rope.yarn)
        #expect(z.factor == 40 && !z.truncate && z.cosSinScale == 1.25)
    }

    @Test func deepseekV2LiteStyle() throws {
        let json = """
        {"architectures": ["DeepseekV2ForCausalLM"], "vocab_size": 102400, "hidden_size": 2048, "intermediate_size": 10944,
         "moe_intermediate_size": 1408, "num_hidden_layers": 27, "num_attention_heads": 16, "n_routed_experts": 64,
         "n_shared_experts": 2, "num_experts_per_tok": 6, "n_group": 1, "topk_group": 1, "topk_method": "greedy",
         "scoring_func": "softmax", "norm_topk_prob": false, "routed_scaling_factor": 1.0, "first_k_dense_replace": 1,
         "moe_layer_freq": 1, "q_lora_rank": null, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
         "v_head_dim": 128, "max_position_embeddings": 163840, "rope_theta": 10000,
         "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                          "original_max_position_embeddings": 4096, "type": "yarn"},
         "bos_token_id": 100000, "eos_token_id": 100001, "torch_dtype": "bfloat16"}
        """
        let c = try parse(json)
        #expect(c.architecture == .deepseekV2 && c.qLoraRank == nil)
        #expect(c.topkMethod == .greedy && c.scoringFunc == .softmax && !c.normTopkProb)
        #expect(c.bosTokenId == 100_000 && c.eosTokenIds == [100_001])
        #expect(c.rope.yarn?.mscale == 0.707)
    }

    @Test func defaultsByArchitecture() throws {
        let v3 = try parse(#"{"model_type": "deepseek_v3"}"#)
        #expect(v3.architecture == .deepseekV3 && v3.scoringFunc == .sigmoid && v3.topkMethod == .noauxTC)
        #expect(v3.nGroup == 8 && v3.topkGroup == 4 && v3.normTopkProb && v3.routedScalingFactor == 2.5)
        #expect(v3.firstKDenseReplace == 3 && v3.moeLayerFreq == 1 && v3.bosTokenId == 0 && v3.eosTokenIds == [1])
        #expect(v3.qLoraRank == 1536 && v3.rope == ModelConfig.RopeConfig(theta: 10_000, yarn: nil) && v3.ropeInterleave)

        let v2 = try parse(#"{"architectures": ["DeepseekV2ForCausalLM"], "num_experts_per_tok": 6, "n_group": 8}"#)
        #expect(v2.architecture == .deepseekV2 && v2.scoringFunc == .softmax && v2.topkMethod == .greedy)
        #expect(!v2.normTopkProb && v2.routedScalingFactor == 1 && v2.firstKDenseReplace == 0)
        #expect(v2.nRoutedExperts == 64 && v2.nSharedExperts == 2 && v2.moeIntermediateSize == 1407)
        #expect(v2.nGroup == 8 && v2.topkGroup == 8)  // unset topk_group: no group restriction
        #expect(v2.bosTokenId == 1 && v2.eosTokenIds == [2] && v2.maxPositionEmbeddings == 2048)

        // DeepSeek-V2's own configuration class defaults topk_method to the typo "gready".
        let typo = try parse(#"{"architectures": ["DeepseekV2ForCausalLM"], "num_experts_per_tok": 6, "topk_method": "gready"}"#)
        #expect(typo.topkMethod == .greedy)
    }

    @Test func unsupportedArchitecture() throws {
        let text = errorText { _ = try parse(#"{"architectures": ["LlamaForCausalLM"]}"#, source: "/m/llama/config.json") }
        #expect(text.contains("LlamaForCausalLM") && text.contains("/m/llama/config.json"))
        #expect(text.contains("DeepseekV3ForCausalLM") && text.contains("DeepseekV2ForCausalLM"))
        #expect(throws: ConfigError.unsupportedArchitecture("qwen2", file: "config.json")) {
            try ModelConfig(jsonData: Data(#"{"model_type": "qwen2"}"#.utf8))
        }
        #expect(throws: ConfigError.missingField("architectures (or model_type)", file: "config.json")) {
            try ModelConfig(jsonData: Data(#"{"hidden_size": 8}"#.utf8))
        }
    }

    @Test func unsupportedRopeType() throws {
        let text = errorText { _ = try parse(patched(deepseekV3Published, ["rope_scaling": ["type": "linear", "factor": 2]])) }
        #expect(text.contains("rope_scaling.type") && text.contains("linear") && text.contains("yarn"))
        let t5 = errorText { _ = try parse(patched(transformers5Style, ["rope_parameters": ["rope_type": "llama3", "factor": 8]])) }
        #expect(t5.contains("rope_parameters.rope_type") && t5.contains("llama3"))
    }

    @Test func wrongTypesNameTheField() throws {
        let t = errorText { _ = try parse(patched(deepseekV3Published, ["hidden_size": "big"])) }
        #expect(t.contains("hidden_size") && t.contains("test/config.json") && t.contains("integer") && t.contains("\"big\""))
        let f = errorText { _ = try parse(patched(deepseekV3Published, ["rope_scaling": ["type": "yarn", "factor": "x"]])) }
        #expect(f.contains("rope_scaling.factor"))
        let b = errorText { _ = try parse(patched(deepseekV3Published, ["norm_topk_prob": "yes"])) }
        #expect(b.contains("norm_topk_prob"))
        let e = errorText { _ = try parse(patched(deepseekV3Published, ["eos_token_id": ["a"]])) }
        #expect(e.contains("eos_token_id"))
        let j = errorText { _ = try parse("{\"hidden_size\": ") }
        #expect(j.contains("test/config.json") && j.contains("not a valid JSON"))
    }

    static func invalid() -> [(patch: [String: Any], field: String)] { [
        (["hidden_size": 0], "hidden_size"),
        (["num_hidden_layers": -1], "num_hidden_layers"),
        (["qk_rope_head_dim": 7], "qk_rope_head_dim"),
        (["q_lora_rank": 0], "q_lora_rank"),
        (["n_routed_experts": 12, "n_group": 8], "n_group"),
        (["topk_group": 9], "topk_group"),
        (["num_experts_per_tok": 300], "num_experts_per_tok"),
        (["num_experts_per_tok": 129], "num_experts_per_tok"),  // more than topk_group 4 × 32 per group
        (["moe_layer_freq": 0], "moe_layer_freq"),
        (["hidden_act": "gelu"], "hidden_act"),
        (["attention_bias": true], "attention_bias"),
        (["scoring_func": "tanh"], "scoring_func"),
        (["topk_method": "best"], "topk_method"),
        (["quantization_config": ["quant_method": "awq"]], "quantization_config.quant_method"),
        (["quantization_config": ["quant_method": "fp8", "weight_block_size": [128]]], "quantization_config.weight_block_size"),
        (["rms_norm_eps": 0], "rms_norm_eps"),
    ] }

    @Test(arguments: 0..<16)
    func validationNamesTheField(_ i: Int) throws {
        #expect(Self.invalid().count == 16)  // keep the argument range in step
        let (patch, field) = Self.invalid()[i]
        let text = errorText { _ = try parse(patched(deepseekV3Published, patch)) }
        #expect(text.contains(field), "\(text)")
        #expect(text.contains("test/config.json"))
    }

    @Test func moeLayersWithFrequencyTwo() throws {
        let c = try parse(patched(transformers5Style, ["moe_layer_freq": 2, "first_k_dense_replace": 1, "num_hidden_layers": 6]))
        #expect((0..<6).map(c.isMoELayer) == [false, false, true, false, true, false])
        let dense = try parse(patched(transformers5Style, ["n_routed_experts": NSNull()]))
        #expect(dense.nRoutedExperts == 0 && !(0..<3).contains(where: dense.isMoELayer))
        let v3 = try parse(deepseekV3Published)
        #expect(!v3.isMoELayer(2) && v3.isMoELayer(3) && v3.isMoELayer(60))
    }

    @Test func writesDeepSeekSpellingThatRoundTrips() throws {
        for json in [deepseekV3Published, transformers5Style, #"{"architectures": ["DeepseekV2ForCausalLM"], "num_experts_per_tok": 6, "q_lora_rank": null}"#] {
            let c = try parse(json)
            let data = try c.jsonData()
            #expect(try ModelConfig(jsonData: data) == c)
            let o = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(o["rope_parameters"] == nil && o["rope_theta"] != nil && o["scoring_func"] != nil && o["topk_method"] != nil)
        }
        let o = try parse(deepseekV3Published).jsonObject()
        let scaling = try #require(o["rope_scaling"] as? [String: Any])
        #expect(scaling["type"] as? String == "yarn")
        #expect((o["quantization_config"] as? [String: Any])?["weight_block_size"] as? [Int] == [128, 128])
    }

    @Test func readsFromFile() throws {
        try withTemporaryDirectory { dir in
            let url = dir.appendingPathComponent("config.json")
            try Data(deepseekV3Published.utf8).write(to: url)
            #expect(try ModelConfig(contentsOf: url).hiddenSize == 7168)
            let missing = errorText { _ = try ModelConfig(contentsOf: dir.appendingPathComponent("nope.json")) }
            #expect(missing.contains("nope.json"))
        }
    }
}
