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
