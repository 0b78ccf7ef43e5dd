import Checkpoint
import Foundation
import Kernels
import Sampling
import Tokenizer

/// Writes a model directory in the real Hugging Face layout (config.json, safetensors in
/// bf16 or f32, tokenizer.json, tokenizer_config.json) with deterministic random weights.
public enum SyntheticCheckpoint {
    /// Shards above this size, as published checkpoints do.
    static let maxShardBytes = 1 << 30

    /// `weights` .f32 stores the same values as .bf16 (bf16-rounded, widened), so the two
    /// checkpoints describe one model and differ only in how the engine computes with them.
    /// `including` picks a subset of the tensors (tests that need only the gates); each keeps
    /// the values it has in the whole checkpoint.
    public static func write(preset: ModelPreset, to directory: URL, seed: UInt64, weights: DType = .bf16,
                             including: (String) -> Bool = { _ in true }) throws {
        precondition(weights == .bf16 || weights == .f32, "synthetic checkpoints are bf16 or f32")
        let config = preset.config
        try config.validate(source: "preset \(preset.rawValue)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try config.jsonData().write(to: directory.appendingPathComponent("config.json"))
        let writer = SafetensorsWriter()
        // A skewed preset adds its hot set to the gates' correction biases; every other value is the base preset's.
        let skew = preset.routingSkew
        let all = tensors(for: config, weights: weights) { layer in
            skew?.biasOffsets(layer: layer, experts: config.nRoutedExperts, seed: seed)
        }
        for (index, tensor) in all.enumerated() where including(tensor.name) {
            let stream = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index)
            try writer.add(tensor.name, dtype: tensor.dtype, shape: tensor.shape) { buffer in
                tensor.values.fill(buffer, dtype: tensor.dtype, bf16Exact: tensor.bf16Exact, seed: stream, offsets: tensor.offsets)
            }
        }
        try writer.writeCheckpoint(to: directory, maxShardBytes: maxShardBytes)
        try TokenizerBuilder.deepseekStyle(vocabSize: config.vocabSize).write(to: directory.appendingPathComponent("tokenizer.json"))
        try TokenizerBuilder.tokenizerConfigJSON().write(to: directory.appendingPathComponent("tokenizer_config.json"))
    }

    struct Tensor {
        let name: String
        let shape: [Int]
        let dtype: DType
        let values: Values
        /// Values rounded to bf16 whatever the storage (see `write`).
        var bf16Exact = true
        /// Added value by value to what is drawn.
        var offsets: [Float]? = nil
    }

    /// How a tensor's values are drawn.
    enum Values {
        case ones
        case uniform(std: Float)
        /// One plus noise: norm weights that are not all equal.
        case nearOne(std: Float)

        func fill(_ buffer: UnsafeMutableRawBufferPointer, dtype: DType, bf16Exact: Bool, seed: UInt64, offsets: [Float]?) {
            var rng = RandomSource(seed: seed)
            let count = buffer.count / dtype.byteSize
            let (base, spread): (Float, Float) = switch self {
            case .ones: (1, 0)
            case .uniform(let std): (0, std * Float(3).squareRoot())
            case .nearOne(let std): (1, std * Float(3).squareRoot())
            }
            for i in 0..<count {
                // Uniform in [-1, 1) from the top 24 bits.
                var v = base + spread * (Float(rng.next() >> 40) * (2 / Float(1 << 24)) - 1)
                if let offsets { v += offsets[i] }
                switch dtype {
                case .bf16: buffer.storeBytes(of: BF16.fromFloat(v), toByteOffset: i * 2, as: UInt16.self)
                default: buffer.storeBytes(of: bf16Exact ? BF16.toFloat(BF16.fromFloat(v)) : v, toByteOffset: i * 4, as: Float.self)
                }
            }
        }
    }

    /// Every tensor of a DeepSeek checkpoint for `config`, named as the published ones;
    /// `biasOffsets` gives what to add to a MoE layer's correction bias, if anything.
    static func tensors(for c: ModelConfig, weights: DType, biasOffsets: (_ layer: Int) -> [Float]?) -> [Tensor] {
        func linear(_ name: String, _ rows: Int, _ cols: Int, gain: Float = 0.5) -> Tensor {
            Tensor(name: name, shape: [rows, cols], dtype: weights, values: .uniform(std: gain / Float(cols).squareRoot()))
        }
        func norm(_ name: String, _ dim: Int) -> Tensor {
            Tensor(name: name, shape: [dim], dtype: weights, values: .nearOne(std: 0.1))
        }
        func ffn(_ prefix: String, _ intermediate: Int) -> [Tensor] {
            [linear(prefix + ".gate_proj.weight", intermediate, c.hiddenSize),
             linear(prefix + ".up_proj.weight", intermediate, c.hiddenSize),
             linear(prefix + ".down_proj.weight", c.hiddenSize, intermediate)]
        }
        let h = c.hiddenSize, heads = c.numAttentionHeads
        var out = [Tensor(name: "model.embed_tokens.weight", shape: [c.vocabSize, h], dtype: weights, values: .uniform(std: 1))]
        for l in 0..<c.numHiddenLayers {
            let p = "model.layers.\(l)."
            out.append(norm(p + "input_layernorm.weight", h))
            out.append(norm(p + "post_attention_layernorm.weight", h))
            let a = p + "self_attn."
            if let rank = c.qLoraRank {
                out.append(linear(a + "q_a_proj.weight", rank, h))
                out.append(norm(a + "q_a_layernorm.weight", rank))
                out.append(linear(a + "q_b_proj.weight", heads * c.qkHeadDim, rank))
            } else {
                out.append(linear(a + "q_proj.weight", heads * c.qkHeadDim, h))
            }
            out.append(linear(a + "kv_a_proj_with_mqa.weight", c.kvLoraRank + c.qkRopeHeadDim, h))
            out.append(norm(a + "kv_a_layernorm.weight", c.kvLoraRank))
            out.append(linear(a + "kv_b_proj.weight", heads * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank))
            out.append(linear(a + "o_proj.weight", h, heads * c.vHeadDim))
            if c.isMoELayer(l) {
                // A wide gate makes different tokens pick different experts.
                out.append(linear(p + "mlp.gate.weight", c.nRoutedExperts, h, gain: 2))
                out.append(Tensor(name: p + "mlp.gate.e_score_correction_bias", shape: [c.nRoutedExperts], dtype: .f32,
                                  values: .uniform(std: 0.05), bf16Exact: false, offsets: biasOffsets(l)))
                for e in 0..<c.nRoutedExperts { out += ffn(p + "mlp.experts.\(e)", c.moeIntermediateSize) }
                if c.nSharedExperts > 0 { out += ffn(p + "mlp.shared_experts", c.moeIntermediateSize * c.nSharedExperts) }
            } else {
                out += ffn(p + "mlp", c.intermediateSize)
            }
        }
        out.append(norm("model.norm.weight", h))
        out.append(linear("lm_head.weight", c.vocabSize, h, gain: 1))
        return out
    }
}
