import Foundation

/// Element-wise and reduction kernels on f32 activations.
public enum VectorOps {
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        let ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b)
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>()
        var i = 0
        while i + 32 <= count {
            s0.addProduct(ar.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self), br.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
            s1.addProduct(ar.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self), br.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self))
            i += 32
        }
        while i + 16 <= count {
            s0.addProduct(ar.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self), br.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
            i += 16
        }
        var s = (s0 + s1).sum()
        while i < count { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// `y += alpha · x`
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
        let a = SIMD16<Float>(repeating: alpha)
        var i = 0
        while i + 16 <= count {
            var v = yr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            v.addProduct(a, xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
            yr.storeBytes(of: v, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count { y[i] += alpha * x[i]; i += 1 }
    }

    /// `out[i] = Σ_j weights[i · ld + j] · rows[j · stride ..< j · stride + cols]` for `outputs`
    /// outputs (`cols` apart in `out`): every element adds its `count` rows in order, one
    /// fused multiply-add each, whatever `outputs` is. Four outputs share each row vector
    /// they load (attention mixing cached rows for a block of heads).
    public static func mix(_ weights: UnsafePointer<Float>, ld: Int, outputs: Int, rows: UnsafePointer<Float>, stride: Int,
                           count: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        let full = cols & ~15, rr = UnsafeRawPointer(rows)
        var i = 0
        while i < outputs {
            let n = min(4, outputs - i), w = weights + i * ld
            var c = 0
            while c < full {
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                for j in 0..<count {
                    let v = rr.loadUnaligned(fromByteOffset: (j * stride + c) * 4, as: SIMD16<Float>.self)
                    a0.addProduct(SIMD16(repeating: w[j]), v)
                    if n > 1 { a1.addProduct(SIMD16(repeating: w[ld + j]), v) }
                    if n > 2 { a2.addProduct(SIMD16(repeating: w[2 * ld + j]), v) }
                    if n > 3 { a3.addProduct(SIMD16(repeating: w[3 * ld + j]), v) }
                }
                let o = UnsafeMutableRawPointer(out + i * cols + c), next = cols * 4
                o.storeBytes(of: a0, as: SIMD16<Float>.self)
                if n > 1 { o.storeBytes(of: a1, toByteOffset: next, as: SIMD16<Float>.self) }
                if n > 2 { o.storeBytes(of: a2, toByteOffset: 2 * next, as: SIMD16<Float>.self) }
                if n > 3 { o.storeBytes(of: a3, toByteOffset: 3 * next, as: SIMD16<Float>.self) }
                c += 16
            }
            for k in 0..<n {
                for c in full..<cols {
                    var s: Float = 0
                    for j in 0..<count { s.addProduct(w[k * ld + j], rows[j * stride + c]) }
                    out[(i + k) * cols + c] = s
                }
            }
            i += n
        }
    }

    /// `y += x` over `rows` rows of `width`: a prompt's rows split over the shared pool, a
    /// decode step's on the calling thread (`ComputePool.rows`).
    public static func add(_ x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        ComputePool.shared.rows(rows, floats: width) { r in
            axpy(1, x + r.lowerBound * width, y + r.lowerBound * width, count: r.count * width)
        }
    }

    public static func scale(_ x: UnsafeMutablePointer<Float>, by alpha: Float, count: Int) {
        let xr = UnsafeMutableRawPointer(x)
        var i = 0
        while i + 16 <= count {
            xr.storeBytes(of: xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * alpha, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count { x[i] *= alpha; i += 1 }
    }

    /// RMSNorm as DeepSeek defines it: `weight ⊙ x / sqrt(mean(x²) + eps)`, per row of `dim`.
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float,
                               out: UnsafeMutablePointer<Float>, dim: Int, rows: Int = 1) {
        for r in 0..<rows {
            let xi = x + r * dim, oi = out + r * dim
            let inv = 1 / (dot(xi, xi, count: dim) / Float(dim) + eps).squareRoot()
            let xr = UnsafeRawPointer(xi), wr = UnsafeRawPointer(weight), orr = UnsafeMutableRawPointer(oi)
            var i = 0
            while i + 16 <= dim {
                let v = xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * inv
                orr.storeBytes(of: v * wr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self), toByteOffset: i * 4, as: SIMD16<Float>.self)
                i += 16
            }
            while i < dim { oi[i] = weight[i] * (xi[i] * inv); i += 1 }
        }
    }

    /// `gate[i] = silu(gate[i]) · up[i]`: the SwiGLU activation between an FFN's two halves.
    public static func siluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        lanes(count) { i, n in
            let g = load(gate + i, n), u = load(up + i, n)
            store(g / (1 + exp(-g)) * u, to: gate + i, n)
        }
    }

    /// In-place softmax over `count` values; the values sum to one.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var m = SIMD16<Float>(repeating: -.infinity)
        lanes(count) { i, n in
            let v = load(x + i, n, padding: -.infinity)
            m.replace(with: v, where: v .> m)
        }
        let top = SIMD16(repeating: m.max())
        var s = SIMD16<Float>()
        lanes(count) { i, n in
            var e = exp(load(x + i, n) - top)
            // The padding lanes of a ragged end must not count.
            if n < 16 { e.replace(with: 0, where: lane .>= SIMD16(repeating: Int32(n))) }
            s += e
            store(e, to: x + i, n)
        }
        scale(x, by: 1 / s.sum(), count: count)
    }

    /// `e^x` in every lane, within two units in the last place of the exact value for x in
    /// [-87.3, 88.3]: `x = n·ln 2 + r` with |r| ≤ ln 2 / 2 (ln 2 in two parts, so `r` is
    /// exact), a degree-7 polynomial for `e^r` (Cephes' coefficients) and `2^n` built in the
    /// exponent bits. Inputs are clamped to that range first: below it the result is about
    /// 1e-38 instead of underflowing, above it 2e38 instead of infinity, which the callers
    /// (sigmoid, softmax of differences from the maximum) cannot tell from the limits. NaN
    /// stays NaN.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        // Comparisons with NaN are false: NaN stays NaN, so a broken input still shows.
        let low = SIMD16<Float>(repeating: -87.3), high = SIMD16<Float>(repeating: 88.3)
        let x = x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
        // Adding 1.5 · 2²³ rounds x / ln 2 to an integer n, left in the low mantissa bits.
        let shifted = SIMD16(repeating: 12_582_912).addingProduct(x, SIMD16(repeating: 1.44269504088896341))
        let n = shifted - 12_582_912
        let r = x.addingProduct(-n, SIMD16(repeating: 0.693359375)).addingProduct(-n, SIMD16(repeating: -2.12194440e-4))
        var p = SIMD16<Float>(repeating: 1.9875691500e-4)
        p = SIMD16(repeating: 1.3981999507e-3).addingProduct(p, r)
        p = SIMD16(repeating: 8.3334519073e-3).addingProduct(p, r)
        p = SIMD16(repeating: 4.1665795894e-2).addingProduct(p, r)
        p = SIMD16(repeating: 1.6666665459e-1).addingProduct(p, r)
        p = SIMD16(repeating: 5.0000001201e-1).addingProduct(p, r)
        let er = r.addingProduct(p, r * r) + 1
        let twoToN = unsafeBitCast((unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23, to: SIMD16<Float>.self)
        return er * twoToN
    }

    private static let lane = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

    /// Calls `body(i, n)` for `count` elements 16 at a time, the last `n` below 16.
    @inline(__always)
    private static func lanes(_ count: Int, _ body: (Int, Int) -> Void) {
        var i = 0
        while i < count { body(i, min(16, count - i)); i += 16 }
    }

    /// `n` values from `p` in the low lanes, `padding` in the others.
    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>, _ n: Int, padding: Float = 0) -> SIMD16<Float> {
        if n == 16 { return UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }
        var v = SIMD16<Float>(repeating: padding)
        for k in 0..<n { v[k] = p[k] }
        return v
    }

    @inline(__always)
    private static func store(_ v: SIMD16<Float>, to p: UnsafeMutablePointer<Float>, _ n: Int) {
        if n == 16 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self); return }
        for k in 0..<n { p[k] = v[k] }
    }
}
