internal import COpenBLAS

/// `y = x · Wᵀ`: the projection every layer is made of.
///
/// f32 weights go to OpenBLAS. bf16 weights stay bf16: a single token is bound by the
/// bytes of weight it streams, so a SIMD kernel decodes weights in registers (no f32
/// copy of the matrix); from two tokens on, oneDNN's bf16 matmul (AVX-512 BF16) wins
/// (`BF16Matmul`, measured in docs/PERFORMANCE.md). Block-scaled FP8 weights stay FP8:
/// up to `FP8.maximumSharedTokens` tokens run SIMD kernels (`FP8`); more go to oneDNN
/// through a bf16 copy, or — for `exact` products — to OpenBLAS through f32 row chunks.
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
        case .bf16:
            if !exact, tokens >= BF16Matmul.minimumTokens, BF16Matmul.multiply(w, x, y, tokens: tokens, ldx: ldx, ldy: ldy, pool: pool) { return }
            SIMDRows.apply(w, x, y, tokens: tokens, ldx: ldx, ldy: ldy, pool: pool)
        case .fp8(let q):
            if SIMDRows.takes(w, tokens: tokens) {
                SIMDRows.apply(w, x, y, tokens: tokens, ldx: ldx, ldy: ldy, pool: pool)
                return
            }
            let fast = FP8.fast(q)
            if fast, !exact, tokens >= FP8.matmulTokens, FP8.multiplyBF16(q, rows: w.rows, cols: cols, xp, ldx: ldx, yp, ldy: ldy, tokens: tokens, pool: pool) {
                return
            }
            // More tokens are compute-bound: each part dequantises its rows to f32 in
            // chunks (in the kernel's column order, the activations reordered to match) and
            // multiplies them with OpenBLAS, activations kept in f32.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: fast ? tokens * cols : 1) { buffer in
                if fast { for t in 0..<tokens { LaneOrder.gather(xp + t * ldx, cols: cols, perLane: 4, into: buffer.baseAddress! + t * cols) } }
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
                LaneOrder.scatter(acc, cols: cols, perLane: 2, into: y)
            }
        case .fp8(let q):
            FP8.transposed(q, rows: w.rows, cols: w.cols, x, y)
        }
    }
}

/// bf16 weights read two at a time: a 32-bit lane holds element 2i in its low half and
/// 2i+1 in its high half, so their f32 values are the lane shifted left by 16 and the lane
/// with its low half cleared — two bit operations, no widening conversion. Activations are
/// put in that order once per product (`LaneOrder`, two weights per lane).
enum BF16Pairs {
    @inline(__always)
    static func split(_ lanes: SIMD16<UInt32>) -> (even: SIMD16<Float>, odd: SIMD16<Float>) {
        (unsafeBitCast(lanes &<< 16, to: SIMD16<Float>.self), unsafeBitCast(lanes & 0xFFFF_0000, to: SIMD16<Float>.self))
    }
}

/// Dot products of bf16 weight rows with f32 activations in lane order.
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
            if SIMDRows.takes(j.weight, tokens: j.tokens) {
                fused.append(j)
            } else {
                apply(j.weight, j.x, j.y, tokens: j.tokens, ldx: j.ldx, ldy: j.ldy, pool: pool)
            }
        }
        guard !fused.isEmpty else { return }
        // Each distinct input is put in lane order once (gate and up projections share theirs).
        var ordered: [Int] = [], size = 0
        var first: [Bool] = []
        for (i, j) in fused.enumerated() {
            let same = fused[..<i].firstIndex { $0.x == j.x && $0.tokens == j.tokens && SIMDRows.sameOrder($0.weight, j.weight) }
            first.append(same == nil)
            ordered.append(same.map { ordered[$0] } ?? size)
            if same == nil { size += j.tokens * j.weight.cols }
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(size, 1)) { buffer in
            let base = buffer.baseAddress!
            for (i, j) in fused.enumerated() where first[i] {
                SIMDRows.order(j.weight, j.x, tokens: j.tokens, ldx: j.ldx, into: base + ordered[i])
            }
            var starts = [Int](), total = 0
            for j in fused { starts.append(total); total += j.weight.rows }
            pool.parallelFor(total, grain: 8) { range in
                for (i, j) in fused.enumerated() where starts[i] < range.upperBound && starts[i] + j.weight.rows > range.lowerBound {
                    let rows = max(range.lowerBound, starts[i]) - starts[i] ..< min(range.upperBound, starts[i] + j.weight.rows) - starts[i]
                    SIMDRows.rows(j.weight, rows, ordered: base + ordered[i], j.x, ldx: j.ldx, j.y, ldy: j.ldy, tokens: j.tokens)
                }
            }
        }
    }
}

/// The products that run on the SIMD kernels (`BF16Dot`, `FP8`): which ones they take,
/// their activations in the kernels' lane order, and rows of the result.
enum SIMDRows {
    /// Whether `w` at `tokens` tokens is a SIMD product, not a oneDNN or OpenBLAS one.
    static func takes(_ w: WeightMatrix, tokens: Int) -> Bool {
        switch w.storage {
        case .f32: false
        case .bf16: tokens < BF16Matmul.minimumTokens
        case .fp8(let q): tokens == 1 || (FP8.fast(q) && tokens <= FP8.maximumSharedTokens)
        }
    }

    /// The lane order `w`'s kernel reads activations in, or nil when it reads them as they are.
    private static func laneOrder(_ w: WeightMatrix) -> (perLane: Int, factor: Float)? {
        switch w.storage {
        case .f32: nil
        case .bf16: (2, 1)
        case .fp8(let q): FP8.fast(q) ? (4, FP8.activationFactor) : nil
        }
    }

    /// Whether two weights read the same input in the same order.
    static func sameOrder(_ a: WeightMatrix, _ b: WeightMatrix) -> Bool {
        guard a.cols == b.cols else { return false }
        switch (laneOrder(a), laneOrder(b)) {
        case (nil, nil): return true
        case let (p?, q?): return p.perLane == q.perLane && p.factor == q.factor
        default: return false
        }
    }

    /// `tokens` rows of `x` (each `w.cols` long, `ldx` apart) into `out` in `w`'s lane order.
    static func order(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, ldx: Int, into out: UnsafeMutablePointer<Float>) {
        guard let (perLane, factor) = laneOrder(w) else { return }
        for t in 0..<tokens { LaneOrder.gather(x + t * ldx, cols: w.cols, perLane: perLane, factor: factor, into: out + t * w.cols) }
    }

    /// `y[t, r]` for `rows` of `w`; `ordered` is `x` through `order`.
    @inline(__always)
    static func rows(_ w: WeightMatrix, _ rows: Range<Int>, ordered: UnsafePointer<Float>, _ x: UnsafePointer<Float>, ldx: Int,
                     _ y: UnsafeMutablePointer<Float>, ldy: Int, tokens: Int) {
        switch w.storage {
        case .f32: preconditionFailure("f32 products run on OpenBLAS")
        case .bf16(let p):
            BF16Dot.rows(p, cols: w.cols, rows: rows, paired: ordered, x: x, ldx: ldx, y: y, ldy: ldy, tokens: tokens)
        case .fp8(let q):
            if tokens == 1 {
                FP8.rows1(q, cols: w.cols, rows: rows, quad: ordered, x: x, y: y)
            } else {
                FP8.rowsMany(q, cols: w.cols, rows: rows, tokens: tokens, quad: ordered, x: x, ldx: ldx, y: y, ldy: ldy)
            }
        }
    }

    /// One product on the pool (or this thread when `pool` is nil).
    static func apply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                      tokens: Int, ldx: Int, ldy: Int, pool: ComputePool?) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: tokens * w.cols) { buffer in
            let ordered = buffer.baseAddress!
            order(w, x, tokens: tokens, ldx: ldx, into: ordered)
            let body: (Range<Int>) -> Void = { rows(w, $0, ordered: ordered, x, ldx: ldx, y, ldy: ldy, tokens: tokens) }
            if let pool { pool.parallelFor(w.rows, grain: 8, body) } else { body(0..<w.rows) }
        }
    }
}
