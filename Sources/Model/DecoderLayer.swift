import Attention
import Checkpoint
import Experts
import Kernels

/// One transformer block: `x += attn(norm(x)); x += mlp(norm(x))`.
public final class DecoderLayer: @unchecked Sendable {
    public enum MLP {
        case dense(FeedForward)
        case moe(MixtureOfExperts)
    }

    public let index: Int
    let inputLayernorm: [Float]
    let postAttentionLayernorm: [Float]
    public let selfAttn: MultiHeadLatentAttention
    public let mlp: MLP
    let hidden: Int
    let eps: Float
    private let normed = Scratch(), branch = Scratch()

    public init(checkpoint: Checkpoint, index: Int, localRouted: Bool) throws {
        let c = checkpoint.config
        let p = "model.layers.\(index)."
        self.index = index
        hidden = c.hiddenSize
        eps = Float(c.rmsNormEps)
        inputLayernorm = try checkpoint.vector(p + "input_layernorm.weight", count: hidden)
        postAttentionLayernorm = try checkpoint.vector(p + "post_attention_layernorm.weight", count: hidden)
        selfAttn = try MultiHeadLatentAttention(checkpoint: checkpoint, layer: index)
        mlp = c.isMoELayer(index)
            ? .moe(try MixtureOfExperts(checkpoint: checkpoint, layer: index, localRouted: localRouted))
            : .dense(try FeedForward(checkpoint: checkpoint, prefix: p + "mlp", hidden: hidden, intermediate: c.intermediateSize))
    }

    public var weightBytes: Int {
        let mlpBytes = switch mlp {
        case .dense(let f): f.weightBytes
        case .moe(let m): m.weightBytes
        }
        return selfAttn.weightBytes + mlpBytes + (inputLayernorm.count + postAttentionLayernorm.count) * 4
    }

    /// Advances the residual stream `x` (`[tokens × hidden]`) through this block.
    public func callAsFunction(_ x: UnsafeMutablePointer<Float>, batch: AttentionBatch, remote: RemoteExperts?) throws {
        let tokens = batch.tokenCount
        let h = normed.floats(tokens * hidden), b = branch.floats(tokens * hidden)
        normalize(x, with: inputLayernorm, into: h, tokens: tokens)
        selfAttn(h, batch: batch, out: b)
        VectorOps.add(b, to: x, rows: tokens, width: hidden)
        normalize(x, with: postAttentionLayernorm, into: h, tokens: tokens)
        switch mlp {
        case .dense(let ffn): ffn(h, tokens: tokens, out: b)
        case .moe(let moe): try moe(h, tokens: tokens, out: b, remote: remote)
        }
        VectorOps.add(b, to: x, rows: tokens, width: hidden)
    }

    private func normalize(_ x: UnsafePointer<Float>, with weight: [Float], into out: UnsafeMutablePointer<Float>, tokens: Int) {
        let (hidden, eps) = (hidden, eps)
        weight.withUnsafeBufferPointer { w in
            ComputePool.shared.rows(tokens, floats: hidden) { r in
                let at = r.lowerBound * hidden
                VectorOps.rmsNorm(x + at, weight: w.baseAddress!, eps: eps, out: out + at, dim: hidden, rows: r.count)
            }
        }
    }
}
