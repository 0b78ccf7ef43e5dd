internal import COpenBLAS

/// `y = x · Wᵀ`: the projection every layer is made of.
///
/// f32 weights go to OpenBLAS. bf16 weights stay bf16: a single token is bound by the
/// bytes of weight it streams, so a SIMD kernel widens each 16-lane chunk in registers
/// (no f32 copy of the matrix); from two tokens on, oneDNN's bf16 matmul (AVX-512 BF16)
/// wins (`BF16Matmul`, measured in docs/PERFORMANCE.md). Block-scaled FP8 weights stay FP8:
/// up to `FP8.maximumSharedTokens` tokens run SIMD kernels that decode bytes in registers
/// (`FP8`); more dequantise row chunks to f32 for OpenBLAS.
public enum Linear {
    /// `y[t, r] = Σ_c W[r, c] · x[t, c]` for `t < tokens`; row `t` of `x` starts at `t · ldx`
    /// (defaults to `cols`), row `t` of `y` at `t · ldy` (defaults to `rows`). `exact` keeps
    /// activations in f32 where oneDNN would round them to bf16: for small products whose
    /// result is a discrete choice (the MoE gate), so choices never depend on batch size.
    public static func apply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                             tokens: Int, ldx: Int? = nil, ldy: Int? = nil, pool: ComputePool? = .shared, exact: Bool = false) {
        let ldx = ldx ?? w.cols, ldy = ldy ?? w.rows, cols = w.cols
        guard tokens > 0, w.rows > 0 else { return }
        let (xp, yp) = (x, y)
        switch w.storage {
        case .f32(let p):
            let wp = p
            // OpenBLAS runs single-threaded here; the pool splits the output rows instead,
            // so BLAS threads and pool threads never fight over the same cores.
            parallelRows(w.rows, grain: 16, pool) { rows in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(rows.count), Int32(cols),
                            1, xp, Int32(ldx), wp + rows.lowerBound * cols, Int32(cols), 0, yp + rows.lowerBound, Int32(ldy))
            }
        case .bf16(let p):
            if !exact, tokens >= BF16Matmul.minimumTokens, BF16Matmul.multiply(w, x, y, tokens: tokens, ldx: ldx, ldy: ldy, pool: pool) { return }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: tokens * cols) { buffer in
                let paired = buffer.baseAddress!
                for t in 0..<tokens { BF16Pairs.reorder(x + t * ldx, cols: cols, into: paired + t * cols) }
                parallelRows(w.rows, grain: 8, pool) { rows in
                    BF16Dot.rows(p, cols: cols, rows: rows, paired: paired, x: xp, ldx: ldx, y: yp, ldy: ldy, tokens: tokens)
                }
            }
        case .fp8(let q):
            let fast = FP8.fast(q)
            if tokens == 1 {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { buffer in
                    let quad = buffer.baseAddress!
                    if fast { FP8.reorder(xp, cols: cols, factor: FP8.activationFactor, into: quad) }
                    parallelRows(w.rows, grain: 8, pool) { rows in
                        FP8.rows1(q, cols: cols, rows: rows, quad: quad, x: xp, y: yp)
                    }
                }
                return
            }
            if fast, tokens <= FP8.maximumSharedTokens {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: tokens * cols) { buffer in
                    let quad = buffer.baseAddress!
                    for t in 0..<tokens { FP8.reorder(xp + t * ldx, cols: cols, factor: FP8.activationFactor, into: quad + t * cols) }
                    parallelRows(w.rows, grain: 8, pool) { rows in
                        FP8.rowsMany(q, cols: cols, rows: rows, tokens: tokens, quad: quad, x: xp, ldx: ldx, y: yp, ldy: ldy)
                    }
                }
                return
            }
            if fast, !exact, tokens >= FP8.matmulTokens, FP8.multiplyBF16(q, rows: w.rows, cols: cols, xp, ldx: ldx, yp, ldy: ldy, tokens: tokens, pool: pool) {
                return
            }
            // More tokens are compute-bound: each part dequantises its rows to f32 in
            // chunks (in the kernel's column order, the activations reordered to match) and
            // multiplies them with OpenBLAS, activations kept in f32.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: fast ? tokens * cols : 1) { buffer in
                if fast { for t in 0..<tokens { FP8.reorder(xp + t * ldx, cols: cols, factor: 1, into: buffer.baseAddress! + t * cols) } }
                let xa = fast ? UnsafePointer(buffer.baseAddress!) : xp, lda = fast ? cols : ldx
                parallelRows(w.rows, grain: 16, pool) { rows in
                    let chunk = 64
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: min(chunk, rows.count) * cols) { wb in
                        let wq = wb.baseAddress!
                        for start in stride(from: rows.lowerBound, to: rows.upperBound, by: chunk) {
                            let part = start..<min(start + chunk, rows.upperBound)
                            FP8.dequantize(q, cols: cols, rows: part, into: wq)
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(part.count), Int32(cols),
                                        1, xa, Int32(lda), wq, Int32(cols), 0, yp + part.lowerBound, Int32(ldy))
                        }
                    }
                }
            }
        }
    }

    /// Splits output rows over `pool`, or runs them all on the calling thread when `pool` is nil
    /// (small head-sized matrices inside an already parallel region).
    @inline(__always)
    private static func parallelRows(_ rows: Int, grain: Int, _ pool: ComputePool?, _ body: (Range<Int>) -> Void) {
        if let pool { pool.parallelFor(rows, grain: grain, body) } else { body(0..<rows) }
    }

    /// `y[c] = Σ_r W[r, c] · x[r]` for one token: the transposed product that folds a
    /// projection into the query (MLA's absorbed path). Single-threaded: matrices are head-sized.
    public static func applyTransposed(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        switch w.storage {
        case .f32(let p):
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(w.rows), Int32(w.cols), 1, p, Int32(w.cols), x, 1, 0, y, 1)
        case .bf16(let p):
            let cols = w.cols, blocks = cols & ~31
            withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { buffer in
                let acc = buffer.baseAddress!
                acc.update(repeating: 0, count: cols)
                let ar = UnsafeMutableRawPointer(acc)
                for r in 0..<w.rows {
                    let row = UnsafeRawPointer(p + r * cols)
                    let a = SIMD16<Float>(repeating: x[r])
                    var c = 0
                    while c < blocks {
                        let (even, odd) = BF16Pairs.split(row.loadUnaligned(fromByteOffset: c * 2, as: SIMD16<UInt32>.self))
                        var e = ar.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self)
                        var o = ar.loadUnaligned(fromByteOffset: c * 4 + 64, as: SIMD16<Float>.self)
                        e.addProduct(a, even)
                        o.addProduct(a, odd)
                        ar.storeBytes(of: e, toByteOffset: c * 4, as: SIMD16<Float>.self)
                        ar.storeBytes(of: o, toByteOffset: c * 4 + 64, as: SIMD16<Float>.self)
                        c += 32
                    }
                    while c < cols { acc[c] += x[r] * BF16.toFloat(p[r * cols + c]); c += 1 }
                }
                BF16Pairs.restore(acc, cols: cols, into: y)
            }
        case .fp8(let q):
            FP8.transposed(q, rows: w.rows, cols: w.cols, x, y)
        }
    }
}

/// bf16 weights read two at a time: a 32-bit lane holds element 2i in its low half and
/// 2i+1 in its high half, so their f32 values are the lane shifted left by 16 and the lane
/// with its low half cleared — two bit operations, no widening conversion. Activations are
/// reordered once per call to match: in each 32-column block, the 16 even columns, then
/// the 16 odd ones.
enum BF16Pairs {
    @inline(__always)
    static func split(_ lanes: SIMD16<UInt32>) -> (even: SIMD16<Float>, odd: SIMD16<Float>) {
        (unsafeBitCast(lanes &<< 16, to: SIMD16<Float>.self), unsafeBitCast(lanes & 0xFFFF_0000, to: SIMD16<Float>.self))
    }

    /// Even-then-odd order per 32-column block; a ragged tail keeps its order.
    static func reorder(_ x: UnsafePointer<Float>, cols: Int, into out: UnsafeMutablePointer<Float>) {
        let blocks = cols & ~31
        for b in stride(from: 0, to: blocks, by: 32) {
            for i in 0..<16 {
                out[b + i] = x[b + 2 * i]
                out[b + 16 + i] = x[b + 2 * i + 1]
            }
        }
        (out + blocks).update(from: x + blocks, count: cols - blocks)
    }

    /// The inverse of `reorder`.
    static func restore(_ x: UnsafePointer<Float>, cols: Int, into out: UnsafeMutablePointer<Float>) {
        let blocks = cols & ~31
        for b in stride(from: 0, to: blocks, by: 32) {
            for i in 0..<16 {
                out[b + 2 * i] = x[b + i]
                out[b + 2 * i + 1] = x[b + 16 + i]
            }
        }
        (out + blocks).update(from: x + blocks, count: cols - blocks)
    }
}

/// Dot products of bf16 weight rows with f32 activations (reordered by `BF16Pairs`).
enum BF16Dot {
    /// `y[t, r]` for `rows` and every token. One token is the case that matters (two or
    /// more go to oneDNN); several land here only when oneDNN declines a product.
    @inline(__always)
    static func rows(_ w: UnsafePointer<UInt16>, cols: Int, rows: Range<Int>, paired: UnsafePointer<Float>,
                     x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int, tokens: Int) {
        for t in 0..<tokens {
            rows1(w, cols: cols, rows: rows, paired: paired + t * cols, x: x + t * ldx, y: y + t * ldy)
        }
    }

    @inline(__always)
    static func rows1(_ w: UnsafePointer<UInt16>, cols: Int, rows: Range<Int>, paired: UnsafePointer<Float>,
                      x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let xr = UnsafeRawPointer(paired)
        let blocks = cols & ~31, pairsOfBlocks = cols & ~63
        for r in rows {
            let row = UnsafeRawPointer(w + r * cols)
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            var c = 0
            while c < pairsOfBlocks {
                let (e0, o0) = BF16Pairs.split(row.loadUnaligned(fromByteOffset: c * 2, as: SIMD16<UInt32>.self))
                let (e1, o1) = BF16Pairs.split(row.loadUnaligned(fromByteOffset: c * 2 + 64, as: SIMD16<UInt32>.self))
                a0.addProduct(e0, xr.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                a1.addProduct(o0, xr.loadUnaligned(fromByteOffset: c * 4 + 64, as: SIMD16<Float>.self))
                a2.addProduct(e1, xr.loadUnaligned(fromByteOffset: c * 4 + 128, as: SIMD16<Float>.self))
                a3.addProduct(o1, xr.loadUnaligned(fromByteOffset: c * 4 + 192, as: SIMD16<Float>.self))
                c += 64
            }
            if c < blocks {
                let (e0, o0) = BF16Pairs.split(row.loadUnaligned(fromByteOffset: c * 2, as: SIMD16<UInt32>.self))
                a0.addProduct(e0, xr.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                a1.addProduct(o0, xr.loadUnaligned(fromByteOffset: c * 4 + 64, as: SIMD16<Float>.self))
                c += 32
            }
            var s = ((a0 + a1) + (a2 + a3)).sum()
            while c < cols { s += BF16.toFloat(w[r * cols + c]) * x[c]; c += 1 }
            y[r] = s
        }
    }
}

/// One product of `Linear.applyMany`: `y = x · Wᵀ` over `tokens` rows.
public struct LinearJob {
    public let weight: WeightMatrix
    public let x: UnsafePointer<Float>
    public let y: UnsafeMutablePointer<Float>
    public let tokens: Int
    public let ldx: Int
    public let ldy: Int

    public init(_ weight: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int, ldx: Int? = nil, ldy: Int? = nil) {
        self.weight = weight
        self.x = x
        self.y = y
        self.tokens = tokens
        self.ldx = ldx ?? weight.cols
        self.ldy = ldy ?? weight.rows
    }
}

extension Linear {
    /// Runs independent products in one parallel region, splitting their rows evenly over
    /// the pool. Decode runs a dozen small matrices per layer (a token's experts, or
    /// the projections that read the same input); one region for all of them saves a
    /// synchronisation per matrix and keeps both cores streaming.
    /// Products of several tokens are matrix products of their own and run one by one.
    public static func applyMany(_ jobs: [LinearJob], pool: ComputePool = .shared) {
        var fused: [LinearJob] = []
        for j in jobs {
            if case .bf16 = j.weight.storage, j.tokens < BF16Matmul.minimumTokens {
                fused.append(j)
            } else if case .fp8(let q) = j.weight.storage, j.tokens == 1 || (FP8.fast(q) && j.tokens <= FP8.maximumSharedTokens) {
                fused.append(j)
            } else {
                apply(j.weight, j.x, j.y, tokens: j.tokens, ldx: j.ldx, ldy: j.ldy, pool: pool)
            }
        }
        guard !fused.isEmpty else { return }
        let jobs = fused
        var starts = [Int](), total = 0
        for j in jobs { starts.append(total); total += j.weight.rows }
        let ends = starts.indices.map { starts[$0] + jobs[$0].weight.rows }
        pool.parallelFor(total, grain: 8) { range in
            for (i, j) in jobs.enumerated() where starts[i] < range.upperBound && ends[i] > range.lowerBound {
                let lo = max(range.lowerBound, starts[i]) - starts[i], hi = min(range.upperBound, ends[i]) - starts[i]
                apply(j.weight.rows(lo..<hi), j.x, j.y + lo, tokens: j.tokens, ldx: j.ldx, ldy: j.ldy, pool: nil)
            }
        }
    }
}
