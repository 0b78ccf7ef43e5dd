import COpenBLAS

/// `y = x · Wᵀ`: the projection every layer is made of.
///
/// f32 weights go to OpenBLAS. bf16 weights stay bf16: a single token is bound by the
/// bytes of weight it streams, so a SIMD kernel widens each 16-lane chunk in registers
/// (no f32 copy of the matrix); from two tokens on, oneDNN's bf16 matmul (AVX-512 BF16)
/// wins (`BF16Matmul`, measured in docs/PERFORMANCE.md).
public enum Linear {
    /// `y[t, r] = Σ_c W[r, c] · x[t, c]` for `t < tokens`; row `t` of `x` starts at `t · ldx`
    /// (defaults to `cols`), row `t` of `y` at `t · ldy` (defaults to `rows`).
    public static func apply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                             tokens: Int, ldx: Int? = nil, ldy: Int? = nil, pool: ComputePool? = .shared) {
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
            if tokens >= BF16Matmul.minimumTokens, BF16Matmul.multiply(w, x, y, tokens: tokens, ldx: ldx, ldy: ldy, pool: pool) { return }
            let wp = p
            parallelRows(w.rows, grain: 8, pool) { rows in
                var t = 0
                while t + 4 <= tokens {
                    BF16Dot.rows4(wp, cols: cols, rows: rows, x: xp + t * ldx, ldx: ldx, y: yp + t * ldy, ldy: ldy)
                    t += 4
                }
                while t < tokens {
                    BF16Dot.rows1(wp, cols: cols, rows: rows, x: xp + t * ldx, y: yp + t * ldy)
                    t += 1
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
            y.update(repeating: 0, count: w.cols)
            let yr = UnsafeMutableRawPointer(y)
            let vec = w.cols & ~15
            for r in 0..<w.rows {
                let row = UnsafeRawPointer(p + r * w.cols)
                let a = SIMD16<Float>(repeating: x[r])
                var c = 0
                while c < vec {
                    var v = yr.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self)
                    v.addProduct(a, BF16.widen(row.loadUnaligned(fromByteOffset: c * 2, as: SIMD16<UInt16>.self)))
                    yr.storeBytes(of: v, toByteOffset: c * 4, as: SIMD16<Float>.self)
                    c += 16
                }
                while c < w.cols { y[c] += x[r] * BF16.toFloat(p[r * w.cols + c]); c += 1 }
            }
        }
    }
}

/// Dot products of bf16 weight rows with f32 activations, 16 lanes at a time.
enum BF16Dot {
    @inline(__always)
    static func rows1(_ w: UnsafePointer<UInt16>, cols: Int, rows: Range<Int>, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let xr = UnsafeRawPointer(x)
        let body = cols & ~63
        let vec = cols & ~15
        for r in rows {
            let row = UnsafeRawPointer(w + r * cols)
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            var c = 0
            while c < body {
                a0.addProduct(BF16.widen(row.loadUnaligned(fromByteOffset: c * 2, as: SIMD16<UInt16>.self)),
                              xr.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                a1.addProduct(BF16.widen(row.loadUnaligned(fromByteOffset: c * 2 + 32, as: SIMD16<UInt16>.self)),
                              xr.loadUnaligned(fromByteOffset: c * 4 + 64, as: SIMD16<Float>.self))
                a2.addProduct(BF16.widen(row.loadUnaligned(fromByteOffset: c * 2 + 64, as: SIMD16<UInt16>.self)),
                              xr.loadUnaligned(fromByteOffset: c * 4 + 128, as: SIMD16<Float>.self))
                a3.addProduct(BF16.widen(row.loadUnaligned(fromByteOffset: c * 2 + 96, as: SIMD16<UInt16>.self)),
                              xr.loadUnaligned(fromByteOffset: c * 4 + 192, as: SIMD16<Float>.self))
                c += 64
            }
            while c < vec {
                a0.addProduct(BF16.widen(row.loadUnaligned(fromByteOffset: c * 2, as: SIMD16<UInt16>.self)),
                              xr.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                c += 16
            }
            var s = ((a0 + a1) + (a2 + a3)).sum()
            while c < cols { s += BF16.toFloat(w[r * cols + c]) * x[c]; c += 1 }
            y[r] = s
        }
    }

    /// Four tokens per pass over each weight row: one widen feeds four FMAs.
    @inline(__always)
    static func rows4(_ w: UnsafePointer<UInt16>, cols: Int, rows: Range<Int>, x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        let x0 = UnsafeRawPointer(x), x1 = x0 + ldx * 4, x2 = x1 + ldx * 4, x3 = x2 + ldx * 4
        let vec = cols & ~15
        for r in rows {
            let row = UnsafeRawPointer(w + r * cols)
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            var c = 0
            while c < vec {
                let wv = BF16.widen(row.loadUnaligned(fromByteOffset: c * 2, as: SIMD16<UInt16>.self))
                a0.addProduct(wv, x0.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                a1.addProduct(wv, x1.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                a2.addProduct(wv, x2.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                a3.addProduct(wv, x3.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                c += 16
            }
            var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
            while c < cols {
                let wf = BF16.toFloat(w[r * cols + c])
                s0 += wf * x[c]; s1 += wf * x[ldx + c]; s2 += wf * x[2 * ldx + c]; s3 += wf * x[3 * ldx + c]
                c += 1
            }
            y[r] = s0; y[ldy + r] = s1; y[2 * ldy + r] = s2; y[3 * ldy + r] = s3
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
        let fused = jobs.filter { j in
            if case .bf16 = j.weight.storage { j.tokens < BF16Matmul.minimumTokens } else { false }
        }
        for j in jobs where !fused.contains(where: { $0.y == j.y }) {
            apply(j.weight, j.x, j.y, tokens: j.tokens, ldx: j.ldx, ldy: j.ldy, pool: pool)
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
