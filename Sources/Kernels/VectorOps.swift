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

    /// `y += x`
    public static func add(_ x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, count: Int) {
        axpy(1, x, y, count: count)
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
        for i in 0..<count {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// In-place softmax over `count` values; returns nothing, the values sum to one.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var m = -Float.infinity
        for i in 0..<count { m = max(m, x[i]) }
        var s: Float = 0
        for i in 0..<count { let e = expf(x[i] - m); x[i] = e; s += e }
        scale(x, by: 1 / s, count: count)
    }
}
