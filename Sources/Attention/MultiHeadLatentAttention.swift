import COpenBLAS
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
        let (kvp, cachep, qp, outp) = (kv, cache, qRows, out)
        let sp = scores.floats(heads * n * visible)
        ComputePool.shared.parallelFor(heads) { hs in
            for h in hs {
                let sc = sp + h * n * visible
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(visible), Int32(self.nopeDim),
                            self.softmaxScale, qp + h * self.qkDim, Int32(self.heads * self.qkDim),
                            kvp + h * (self.nopeDim + self.valueDim), Int32(kvWidth), 0, sc, Int32(visible))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(visible), Int32(self.ropeDim),
                            self.softmaxScale, qp + h * self.qkDim + self.nopeDim, Int32(self.heads * self.qkDim),
                            cachep + self.latentDim, Int32(width), 1, sc, Int32(visible))
                for i in 0..<n {
                    let row = sc + i * visible
                    let seen = s.startPosition + i + 1
                    VectorOps.softmax(row, count: seen)
                    (row + seen).update(repeating: 0, count: visible - seen)
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(self.valueDim), Int32(visible),
                            1, sc, Int32(visible), kvp + h * (self.nopeDim + self.valueDim) + self.nopeDim, Int32(kvWidth),
                            0, outp + h * self.valueDim, Int32(self.heads * self.valueDim))
            }
        }
    }

    /// Folds `kv_b_proj`'s key half into each query and its value half into the output,
    /// attending directly over the latent cache.
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
            let (qp, fp, op, lp, cp, scp) = (qRow, folded, out, latentOut, cache, sc)
            ComputePool.shared.parallelFor(heads) { hs in
                for h in hs {
                    let fq = fp + h * width
                    Linear.applyTransposed(self.kvBProj.rows(h * block ..< h * block + self.nopeDim), qp + h * self.qkDim, fq)
                    (fq + self.latentDim).update(from: qp + h * self.qkDim + self.nopeDim, count: self.ropeDim)
                    let sh = scp + h * visible
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(visible), Int32(width), self.softmaxScale,
                                cp, Int32(width), fq, 1, 0, sh, 1)
                    VectorOps.softmax(sh, count: visible)
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(visible), Int32(self.latentDim), 1,
                                cp, Int32(width), sh, 1, 0, lp + h * self.latentDim, 1)
                    Linear.apply(self.kvBProj.rows(h * block + self.nopeDim ..< (h + 1) * block),
                                 lp + h * self.latentDim, op + h * self.valueDim, tokens: 1, pool: nil)
                }
            }
        }
    }
}
