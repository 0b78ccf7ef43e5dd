import Checkpoint
import Kernels

/// Multi-head Latent Attention (DeepSeek-V2/V3) for one layer, tensor names as in the checkpoint.
///
/// Keys and values are cached compressed (`c_kv`, `k_pe`) and read in DeepSeek's absorbed
/// form for every step shape: `kv_b_proj`'s key half is folded into each query and its
/// value half into the output, so no query expands the cache. One algorithm for prefill,
/// chunks and decode is what makes a position's logits the same bits however its prompt
/// was split (the expanded form, cheaper for long prompts, sums in another order).
public final class MultiHeadLatentAttention: @unchecked Sendable {

    let layer: Int
    let heads: Int, nopeDim: Int, ropeDim: Int, valueDim: Int, latentDim: Int, hidden: Int
    /// The latent norms (`q_a_layernorm`, `kv_a_layernorm`) use DeepSeek's RMSNorm default,
    /// not `rms_norm_eps`.
    let latentNormEps: Float = 1e-6
    let softmaxScale: Float
    /// Floats per cached position (`ModelConfig.latentCacheRowFloats`); folded queries are
    /// laid out the same way.
    let rowStride: Int
    let rope: RotaryEmbedding

    let qProj: WeightMatrix?
    let qAProj: WeightMatrix?
    let qALayernorm: [Float]
    let qBProj: WeightMatrix?
    let kvAProjWithMQA: WeightMatrix
    let kvALayernorm: [Float]
    /// Per head, the key half of `kv_b_proj` transposed (`[latent × nope]`), so that folding
    /// the step's queries into the latent space is one ordinary product per head.
    let keyFolds: [WeightMatrix]
    /// Per head, the value half of `kv_b_proj` (`[value × latent]`).
    let valueHeads: [WeightMatrix]
    let oProj: WeightMatrix

    private let queries = Scratch(), latents = Scratch(), context = Scratch(), qLow = Scratch()
    private let foldedQueries = Scratch(), mixedLatents = Scratch()
    /// Per pool thread: the scores of the heads it is working on.
    private let scores = (0..<ComputePool.shared.threads).map { _ in Scratch() }

    public init(checkpoint: Checkpoint, layer: Int) throws {
        let c = checkpoint.config
        let p = "model.layers.\(layer).self_attn."
        self.layer = layer
        heads = c.numAttentionHeads
        nopeDim = c.qkNopeHeadDim
        ropeDim = c.qkRopeHeadDim
        valueDim = c.vHeadDim
        latentDim = c.kvLoraRank
        hidden = c.hiddenSize
        softmaxScale = RotaryEmbedding.softmaxScale(config: c)
        rowStride = c.latentCacheRowFloats
        rope = RotaryEmbedding(config: c)
        let qkDim = c.qkNopeHeadDim + c.qkRopeHeadDim
        if let rank = c.qLoraRank {
            qProj = nil
            qAProj = try checkpoint.matrix(p + "q_a_proj.weight", rows: rank, cols: hidden)
            qALayernorm = try checkpoint.vector(p + "q_a_layernorm.weight", count: rank)
            qBProj = try checkpoint.matrix(p + "q_b_proj.weight", rows: heads * qkDim, cols: rank)
        } else {
            qProj = try checkpoint.matrix(p + "q_proj.weight", rows: heads * qkDim, cols: hidden)
            qAProj = nil
            qALayernorm = []
            qBProj = nil
        }
        kvAProjWithMQA = try checkpoint.matrix(p + "kv_a_proj_with_mqa.weight", rows: latentDim + ropeDim, cols: hidden)
        kvALayernorm = try checkpoint.vector(p + "kv_a_layernorm.weight", count: latentDim)
        let block = c.qkNopeHeadDim + c.vHeadDim
        let kvBProj = try checkpoint.matrix(p + "kv_b_proj.weight", rows: heads * block, cols: latentDim)
        keyFolds = (0..<heads).map { kvBProj.rows($0 * block ..< $0 * block + c.qkNopeHeadDim).transposed() }
        valueHeads = (0..<heads).map { kvBProj.rows($0 * block + c.qkNopeHeadDim ..< ($0 + 1) * block) }
        oProj = try checkpoint.matrix(p + "o_proj.weight", rows: hidden, cols: heads * valueDim)
    }

    public var weightBytes: Int {
        [qProj, qAProj, qBProj, kvAProjWithMQA, oProj].compactMap { $0?.byteCount }.reduce(0, +)
            + (keyFolds + valueHeads).reduce(0) { $0 + $1.byteCount }
            + (qALayernorm.count + kvALayernorm.count) * 4
    }

    var qkDim: Int { nopeDim + ropeDim }

    /// Attention for the step's tokens: `x` is `[tokens × hidden]` (already normalised),
    /// `out` receives `[tokens × hidden]`. Writes the tokens' latents into their caches at
    /// this layer; `batch.commit()` after the last layer makes them visible.
    public func callAsFunction(_ x: UnsafePointer<Float>, batch: AttentionBatch, out: UnsafeMutablePointer<Float>) {
        let tokens = batch.tokenCount
        let q = queries.floats(tokens * heads * qkDim)
        let width = latentDim + ropeDim
        let kv = latents.floats(tokens * width)
        // The query's first projection and the latent projection read the same input: one region.
        if let qProj {
            Linear.applyMany([LinearJob(qProj, x, q, tokens: tokens), LinearJob(kvAProjWithMQA, x, kv, tokens: tokens)])
        } else if let qAProj, let qBProj {
            let low = qLow.floats(tokens * qAProj.rows)
            Linear.applyMany([LinearJob(qAProj, x, low, tokens: tokens), LinearJob(kvAProjWithMQA, x, kv, tokens: tokens)])
            qALayernorm.withUnsafeBufferPointer {
                VectorOps.rmsNorm(low, weight: $0.baseAddress!, eps: latentNormEps, out: low, dim: qAProj.rows, rows: tokens)
            }
            Linear.apply(qBProj, low, q, tokens: tokens)
        }
        let positions = batch.positions
        kvALayernorm.withUnsafeBufferPointer { norm in
            // A prompt's tokens split over the pool (each token's rows are its own).
            ComputePool.shared.rows(tokens, floats: width + heads * qkDim) { range in
                for t in range {
                    let row = kv + t * width
                    VectorOps.rmsNorm(row, weight: norm.baseAddress!, eps: latentNormEps, out: row, dim: latentDim)
                    rope.apply(row + latentDim, position: positions[t], count: 1, stride: width)
                    rope.apply(q + t * heads * qkDim + nopeDim, position: positions[t], count: heads, stride: qkDim)
                }
            }
        }
        for s in batch.slices {
            for i in 0..<s.count {
                (s.cache.layer(layer) + (s.startPosition + i) * rowStride).update(from: kv + (s.first + i) * width, count: width)
            }
        }
        let ctx = context.floats(tokens * heads * valueDim)
        absorbed(q, batch: batch, context: ctx)
        Linear.apply(oProj, ctx, out, tokens: tokens)
    }

    /// Heads per unit of work: a unit reads each cache row once for all its heads.
    private var headBlock: Int { max(1, (heads + ComputePool.shared.threads - 1) / ComputePool.shared.threads) }

    /// Every token of the step attends over its sequence's latent cache up to its own
    /// position, in three parallel regions:
    /// 1. each head's queries folded through the key half of `kv_b_proj` (one product per
    ///    head over all tokens), the rope part appended;
    /// 2. per (token, block of heads): scores against each cached row (a product with the
    ///    cache rows as its weight), softmax, and the rows mixed in position order;
    /// 3. the value half of `kv_b_proj`, one product per head over all tokens.
    /// Each is an exact product or a fixed-order loop per element, so a position's result
    /// does not depend on the step's other tokens.
    private func absorbed(_ q: UnsafeMutablePointer<Float>, batch: AttentionBatch, context: UnsafeMutablePointer<Float>) {
        let tokens = batch.tokenCount
        let folded = foldedQueries.floats(tokens * heads * rowStride), mixed = mixedLatents.floats(tokens * heads * latentDim)
        Linear.applyMany((0..<heads).map { h in
            LinearJob(keyFolds[h], q + h * qkDim, folded + h * rowStride, tokens: tokens, ldx: heads * qkDim, ldy: heads * rowStride)
        })
        // Folded queries are laid out like cache rows: latent, rope part, zero padding.
        ComputePool.shared.rows(tokens * heads, floats: rowStride) { range in
            for th in range {
                let row = folded + th * rowStride + latentDim
                row.update(from: q + th * qkDim + nopeDim, count: ropeDim)
                (row + ropeDim).update(repeating: 0, count: rowStride - latentDim - ropeDim)
            }
        }
        var caches = [UnsafePointer<Float>](repeating: q, count: tokens)
        for s in batch.slices { for i in 0..<s.count { caches[s.first + i] = UnsafePointer(s.cache.layer(layer)) } }
        let positions = batch.positions
        let longest = (positions.max() ?? 0) + 1, group = headBlock, blocks = (heads + group - 1) / group
        ComputePool.shared.parallelChunks(tokens * blocks) { thread, units in
            let p = scores[thread].floats(group * longest)
            for unit in units {
                let t = unit / blocks, first = (unit % blocks) * group, n = min(heads, first + group) - first
                let visible = positions[t] + 1, at = t * heads + first
                let cache = WeightMatrix(rows: visible, cols: rowStride, storage: .f32(caches[t]), owner: nil)
                Linear.apply(cache, folded + at * rowStride, p, tokens: n, ldy: longest, pool: nil)
                for i in 0..<n {
                    VectorOps.scale(p + i * longest, by: softmaxScale, count: visible)
                    VectorOps.softmax(p + i * longest, count: visible)
                }
                VectorOps.mix(p, ld: longest, outputs: n, rows: caches[t], stride: rowStride, count: visible, cols: latentDim,
                              into: mixed + at * latentDim)
            }
        }
        Linear.applyMany((0..<heads).map { h in
            LinearJob(valueHeads[h], mixed + h * latentDim, context + h * valueDim, tokens: tokens, ldx: heads * latentDim, ldy: heads * valueDim)
        })
    }
}
