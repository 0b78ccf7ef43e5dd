import Checkpoint
import Kernels

/// Multi-head Latent Attention (DeepSeek-V2/V3) for one layer, tensor names as in the checkpoint.
///
/// Keys and values are cached compressed (`c_kv`, `k_pe`); two algorithms read that cache:
/// - `naive` expands `c_kv` through `kv_b_proj` into per-head keys and values — cheap when
///   many queries share the expansion (prefill);
/// - `absorbed` folds `kv_b_proj` into each query and into the output instead, so a single
///   query never expands the cache (decode).
public final class MultiHeadLatentAttention: @unchecked Sendable {
    public enum Algorithm: Sendable { case naive, absorbed }

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

    private let queries = Scratch(), latents = Scratch(), expanded = Scratch(), scores = Scratch()
    private let context = Scratch(), absorbedQueries = Scratch(), qLow = Scratch()

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
    /// `algorithm` nil picks naive for multi-token slices and absorbed for single tokens.
    public func callAsFunction(_ x: UnsafePointer<Float>, batch: AttentionBatch, out: UnsafeMutablePointer<Float>,
                               algorithm: Algorithm? = nil) {
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
        for s in batch.slices {
            switch algorithm ?? (s.count > 1 ? .naive : .absorbed) {
            case .naive: naive(q, slice: s, context: ctx)
            case .absorbed: absorbed(q, slice: s, context: ctx)
            }
        }
        Linear.apply(oProj, ctx, out, tokens: tokens)
    }

    /// Expands the slice's whole visible cache into per-head keys and values, then attends.
    /// Each thread scores one head at a time in its own `[tokens × visible]` tile.
    private func naive(_ q: UnsafeMutablePointer<Float>, slice s: AttentionBatch.Slice, context: UnsafeMutablePointer<Float>) {
        let width = latentDim + ropeDim
        let visible = s.startPosition + s.count
        let cache = s.cache.layer(layer)
        let kvWidth = heads * (nopeDim + valueDim)
        let kv = expanded.floats(visible * kvWidth)
        Linear.apply(kvBProj, cache, kv, tokens: visible, ldx: width)
        let n = s.count
        let qRows = q + s.first * heads * qkDim
        let out = context + s.first * heads * valueDim
        let pool = ComputePool.shared
        let tiles = scores.floats(pool.threads * n * visible)
        pool.parallelChunks(heads) { part, hs in
            let sc = tiles + part * n * visible
            for h in hs {
                let k = kv + h * (nopeDim + valueDim)
                Dense.multiplyTransposed(m: n, n: visible, k: nopeDim, alpha: softmaxScale, a: qRows + h * qkDim, lda: heads * qkDim,
                                         b: k, ldb: kvWidth, c: sc, ldc: visible)
                Dense.multiplyTransposed(m: n, n: visible, k: ropeDim, alpha: softmaxScale, a: qRows + h * qkDim + nopeDim, lda: heads * qkDim,
                                         b: cache + latentDim, ldb: width, beta: 1, c: sc, ldc: visible)
                for i in 0..<n {
                    let row = sc + i * visible
                    let seen = s.startPosition + i + 1
                    VectorOps.softmax(row, count: seen)
                    (row + seen).update(repeating: 0, count: visible - seen)
                }
                Dense.multiply(m: n, n: valueDim, k: visible, a: sc, lda: visible, b: k + nopeDim, ldb: kvWidth,
                               c: out + h * valueDim, ldc: heads * valueDim)
            }
        }
    }

    /// Folds `kv_b_proj`'s key half into each query and its value half into the output,
    /// attending directly over the latent cache. Each thread takes a block of heads and
    /// reads the cache once for all of them.
    private func absorbed(_ q: UnsafeMutablePointer<Float>, slice s: AttentionBatch.Slice, context: UnsafeMutablePointer<Float>) {
        let width = latentDim + ropeDim
        let cache = s.cache.layer(layer)
        let block = nopeDim + valueDim
        let folded = absorbedQueries.floats(heads * width)
        let latentOut = expanded.floats(heads * latentDim)
        for i in 0..<s.count {
            let visible = s.startPosition + i + 1
            let qRow = q + (s.first + i) * heads * qkDim
            let out = context + (s.first + i) * heads * valueDim
            let sc = scores.floats(heads * visible)
            ComputePool.shared.parallelFor(heads) { hs in
                for h in hs {
                    let fq = folded + h * width
                    Linear.applyTransposed(kvBProj.rows(h * block ..< h * block + nopeDim), qRow + h * qkDim, fq)
                    (fq + latentDim).update(from: qRow + h * qkDim + nopeDim, count: ropeDim)
                }
                let first = hs.lowerBound
                Dense.multiplyTransposed(m: hs.count, n: visible, k: width, alpha: softmaxScale, a: folded + first * width, lda: width,
                                         b: cache, ldb: width, c: sc + first * visible, ldc: visible)
                for h in hs { VectorOps.softmax(sc + h * visible, count: visible) }
                Dense.multiply(m: hs.count, n: latentDim, k: visible, a: sc + first * visible, lda: visible, b: cache, ldb: width,
                               c: latentOut + first * latentDim, ldc: latentDim)
                for h in hs {
                    Linear.apply(kvBProj.rows(h * block + nopeDim ..< (h + 1) * block),
                                 latentOut + h * latentDim, out + h * valueDim, tokens: 1, pool: nil)
                }
            }
        }
    }
}
