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
    let rope: RotaryEmbedding

    let qProj: WeightMatrix?
    let qAProj: WeightMatrix?
    let qALayernorm: [Float]
    let qBProj: WeightMatrix?
    let kvAProjWithMQA: WeightMatrix
    let kvALayernorm: [Float]
    let kvBProj: WeightMatrix
    let oProj: WeightMatrix

    private let queries = Scratch(), latents = Scratch(), context = Scratch(), qLow = Scratch()
    /// Per pool part: folded queries, scores and latent outputs of its heads.
    private let parts = (0..<ComputePool.shared.threads).map { _ in Scratch() }

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
        kvBProj = try checkpoint.matrix(p + "kv_b_proj.weight", rows: heads * (nopeDim + valueDim), cols: latentDim)
        oProj = try checkpoint.matrix(p + "o_proj.weight", rows: hidden, cols: heads * valueDim)
    }

    public var weightBytes: Int {
        [qProj, qAProj, qBProj, kvAProjWithMQA, kvBProj, oProj].compactMap { $0?.byteCount }.reduce(0, +)
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
        for t in 0..<tokens {
            let row = kv + t * width
            kvALayernorm.withUnsafeBufferPointer {
                VectorOps.rmsNorm(row, weight: $0.baseAddress!, eps: latentNormEps, out: row, dim: latentDim)
            }
            rope.apply(row + latentDim, position: positions[t], count: 1, stride: width)
            rope.apply(q + t * heads * qkDim + nopeDim, position: positions[t], count: heads, stride: qkDim)
        }
        for s in batch.slices {
            (s.cache.layer(layer) + s.startPosition * width).update(from: kv + s.first * width, count: s.count * width)
        }
        let ctx = context.floats(tokens * heads * valueDim)
        absorbed(q, batch: batch, context: ctx)
        Linear.apply(oProj, ctx, out, tokens: tokens)
    }

    /// Heads per unit of work: a unit reads each cache row once for all its heads.
    private var headBlock: Int { max(1, (heads + ComputePool.shared.threads - 1) / ComputePool.shared.threads) }

    /// Every token of the step attends over its sequence's latent cache up to its own
    /// position, one (token, block of heads) per unit of work. Per head: the query folded
    /// through the key half of `kv_b_proj`, scores against each cached row (`VectorOps.dot`),
    /// softmax, the rows mixed in position order, and the value half of `kv_b_proj`.
    private func absorbed(_ q: UnsafeMutablePointer<Float>, batch: AttentionBatch, context: UnsafeMutablePointer<Float>) {
        let width = latentDim + ropeDim, block = nopeDim + valueDim
        let tokens = batch.tokenCount, group = headBlock, blocks = (heads + group - 1) / group
        var caches = [UnsafeMutablePointer<Float>](repeating: q, count: tokens)
        for s in batch.slices { for i in 0..<s.count { caches[s.first + i] = s.cache.layer(layer) } }
        let positions = batch.positions
        let longest = (positions.max() ?? 0) + 1
        ComputePool.shared.parallelChunks(tokens * blocks) { part, units in
            let scratch = parts[part].floats(group * (width + longest + latentDim))
            let folded = scratch, scores = scratch + group * width, latent = scores + group * longest
            for unit in units {
                let t = unit / blocks, hs = (unit % blocks) * group ..< min(heads, (unit % blocks + 1) * group)
                let cache = UnsafePointer(caches[t]), visible = positions[t] + 1
                let qRow = q + t * heads * qkDim
                for (i, h) in hs.enumerated() {
                    let fq = folded + i * width
                    Linear.applyTransposed(kvBProj.rows(h * block ..< h * block + nopeDim), qRow + h * qkDim, fq)
                    (fq + latentDim).update(from: qRow + h * qkDim + nopeDim, count: ropeDim)
                }
                for j in 0..<visible {
                    for i in 0..<hs.count {
                        scores[i * longest + j] = VectorOps.dot(folded + i * width, cache + j * width, count: width) * softmaxScale
                    }
                }
                for i in 0..<hs.count { VectorOps.softmax(scores + i * longest, count: visible) }
                latent.update(repeating: 0, count: hs.count * latentDim)
                for j in 0..<visible {
                    for i in 0..<hs.count {
                        VectorOps.axpy(scores[i * longest + j], cache + j * width, latent + i * latentDim, count: latentDim)
                    }
                }
                for (i, h) in hs.enumerated() {
                    Linear.apply(kvBProj.rows(h * block + nopeDim ..< (h + 1) * block), latent + i * latentDim,
                                 context + t * heads * valueDim + h * valueDim, tokens: 1, pool: nil)
                }
            }
        }
    }
}
