import Attention
import Checkpoint
import Kernels

/// A DeepSeek-V2/V3 causal language model in one process: embeddings, the decoder
/// blocks, the final norm and the LM head, named as the checkpoint names them.
public final class DeepseekModel: @unchecked Sendable {
    public let config: ModelConfig
    let embedTokens: WeightMatrix
    public let layers: [DecoderLayer]
    let norm: [Float]
    let lmHead: WeightMatrix
    private let residual = Scratch(), finalNormed = Scratch()

    /// Loads every weight, or — for a cluster's attention rank (`localRouted` false) —
    /// everything but the gates and routed experts, which other ranks hold.
    public init(checkpoint: Checkpoint, localRouted: Bool = true) throws {
        let c = checkpoint.config
        config = c
        embedTokens = try checkpoint.matrix("model.embed_tokens.weight", rows: c.vocabSize, cols: c.hiddenSize)
        layers = try (0..<c.numHiddenLayers).map { try DecoderLayer(checkpoint: checkpoint, index: $0, localRouted: localRouted) }
        norm = try checkpoint.vector("model.norm.weight", count: c.hiddenSize)
        lmHead = c.tieWordEmbeddings && !checkpoint.contains("lm_head.weight")
            ? embedTokens
            : try checkpoint.matrix("lm_head.weight", rows: c.vocabSize, cols: c.hiddenSize)
    }

    public var weightBytes: Int {
        embedTokens.byteCount + layers.reduce(0) { $0 + $1.weightBytes } + norm.count * 4
            + (lmHead.storage.identity == embedTokens.storage.identity ? 0 : lmHead.byteCount)
    }

    /// An empty latent cache for one sequence.
    public func makeCache(capacity: Int = 256) -> LatentCache {
        LatentCache(config: config, capacity: capacity)
    }

    /// Runs one step: `tokens` (in the batch's token-row order) extend their sequences'
    /// caches; returns the logits of the rows `logitRows`, `[logitRows.count × vocab]`.
    /// `remote` carries MoE layers whose routed experts live on other ranks.
    public func forward(tokens: [Int], batch: AttentionBatch, logitRows: [Int], remote: RemoteExperts? = nil) throws -> [Float] {
        precondition(tokens.count == batch.tokenCount)
        let hidden = config.hiddenSize
        let x = residual.floats(tokens.count * hidden)
        for (t, id) in tokens.enumerated() { embedTokens.copyRow(id, to: x + t * hidden) }
        batch.reserve()
        for layer in layers { try layer(x, batch: batch, remote: remote) }
        batch.commit()
        let h = finalNormed.floats(logitRows.count * hidden)
        norm.withUnsafeBufferPointer { w in
            for (i, r) in logitRows.enumerated() {
                VectorOps.rmsNorm(x + r * hidden, weight: w.baseAddress!, eps: Float(config.rmsNormEps), out: h + i * hidden, dim: hidden)
            }
        }
        var logits = [Float](repeating: 0, count: logitRows.count * config.vocabSize)
        logits.withUnsafeMutableBufferPointer { Linear.apply(lmHead, h, $0.baseAddress!, tokens: logitRows.count) }
        return logits
    }

    /// The routing decisions of MoE layer `layer` in the last step (token-row order), or nil for a dense layer.
    public func lastRouting(layer: Int) -> [[Int]]? {
        guard case .moe(let moe) = layers[layer].mlp, case .local = moe.routed else { return nil }
        return (0..<moe.routing.tokens).map { moe.routing.sortedExperts(token: $0) }
    }
}

extension DeepseekModel {
    /// Bytes of weight one step over `tokens` tokens reads when MoE layer `layer` runs
    /// `routedExperts(layer)` distinct routed experts: every attention and dense weight, the
    /// gate, the shared experts and those routed experts of each MoE layer, the LM head, and an
    /// embedding row per token. Decode rooflines divide memory bandwidth by this: one token
    /// reads `num_experts_per_tok` experts a layer, and the tokens of a batch share theirs, so a
    /// step over a batch reads less than one token's bytes times the batch.
    public func weightBytesPerStep(tokens: Int, routedExperts: (_ layer: Int) -> Int) -> Int {
        var bytes = lmHead.byteCount + tokens * embedTokens.byteCount / config.vocabSize
        for layer in layers {
            bytes += layer.selfAttn.weightBytes
            switch layer.mlp {
            case .dense(let ffn): bytes += ffn.weightBytes
            case .moe(let moe):
                bytes += moe.sharedExperts?.weightBytes ?? 0
                if case .local(let gate, let experts) = moe.routed {
                    bytes += gate.weightBytes + routedExperts(layer.index) * experts.weightBytes / max(experts.held.count, 1)
                }
            }
        }
        return bytes
    }
}
