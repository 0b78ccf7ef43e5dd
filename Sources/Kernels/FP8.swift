import Foundation

/// E4M3 (FP8) decoding without a table: the sign moves to bit 31 and the 7 exponent and
/// mantissa bits to bits 20–26, which makes the f32 `value · 2⁻¹²⁰` for normals and
/// subnormals alike (0x7F/0xFF, E4M3's NaN, become ±480: weights are never NaN).
public enum FP8 {
    /// `value · 2⁻¹²⁰` of the E4M3 byte in each of the four byte positions of the lanes:
    /// element `k` holds byte `k` of every lane (so 64 consecutive bytes come out as columns
    /// `4i + k` in vector `k`; activations are put in that order by `LaneOrder.gather`).
    @inline(__always)
    static func split(_ l: SIMD16<UInt32>) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        // Byte k shifted to the top, then arithmetically right by 4: its sign stays in bit 31
        // (copied into bits 27–30, masked off with the lower bytes' bits), its 7 other bits
        // land in 20–26. Three operations per 16 weights, where separate sign and magnitude
        // masks took five (decode is compute-bound: it ran at half the streaming rate).
        let mask = SIMD16<UInt32>(repeating: 0x87F0_0000)
        @inline(__always) func top(_ v: SIMD16<UInt32>) -> SIMD16<Float> {
            unsafeBitCast(unsafeBitCast(unsafeBitCast(v, to: SIMD16<Int32>.self) &>> 4, to: SIMD16<UInt32>.self) & mask,
                          to: SIMD16<Float>.self)
        }
        return (top(l &<< 24), top(l &<< 16), top(l &<< 8), top(l))
    }

    /// One E4M3 byte's value.
    @inline(__always)
    public static func toFloat(_ b: UInt8) -> Float {
        let x = UInt32(b)
        return Float(bitPattern: ((x & 0x80) << 24) | ((x & 0x7F) << 20)) * 0x1p120
    }

    /// Whether the SIMD kernels apply: every tile is a whole number of 64-column blocks
    /// (DeepSeek's 128 × 128), so a block never straddles two scales.
    @inline(__always)
    static func fast(_ q: FP8Blocks) -> Bool { q.blockCols % 64 == 0 }

    /// Activations enter the dot products scaled by 2⁶⁴ (and tile scales by 2⁵⁶, so the
    /// product carries the 2¹²⁰ the decoding leaves out): products of subnormal weights
    /// with ordinary activations stay normal f32, off the slow denormal path.
    static let activationFactor: Float = 0x1p64
    static let scaleFactor: Float = 0x1p56

    /// `y[r] = Σ_c W[r, c] · x[c]` for `rows`, one token. `quad` is `x` through `LaneOrder.gather`
    /// with `activationFactor` when `fast(w)`, else unused; `x` is in natural order.
    static func rows1(_ w: FP8Blocks, cols: Int, rows: Range<Int>, quad: UnsafePointer<Float>,
                      x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        guard fast(w) else {
            for r in rows {
                let row = w.bytes + r * cols, scales = w.scaleRow(r)
                var s: Float = 0
                for c in 0..<cols { s += toFloat(row[c]) * scales[c / w.blockCols] * x[c] }
                y[r] = s
            }
            return
        }
        let xr = UnsafeRawPointer(quad), bc = w.blockCols
        let full = cols & ~63
        for r in rows {
            let row = UnsafeRawPointer(w.bytes + r * cols), scales = w.scaleRow(r)
            var acc = SIMD16<Float>()
            var c = 0, tile = 0
            while c < full {
                let end = min(c + bc, full)
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                while c < end {
                    let (q0, q1, q2, q3) = split(row.loadUnaligned(fromByteOffset: c, as: SIMD16<UInt32>.self))
                    a0.addProduct(q0, xr.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                    a1.addProduct(q1, xr.loadUnaligned(fromByteOffset: c * 4 + 64, as: SIMD16<Float>.self))
                    a2.addProduct(q2, xr.loadUnaligned(fromByteOffset: c * 4 + 128, as: SIMD16<Float>.self))
                    a3.addProduct(q3, xr.loadUnaligned(fromByteOffset: c * 4 + 192, as: SIMD16<Float>.self))
                    c += 64
                }
                acc.addProduct((a0 + a1) + (a2 + a3), SIMD16(repeating: scales[tile] * scaleFactor))
                tile += 1
            }
            var s = acc.sum()
            while c < cols { s += toFloat(row.load(fromByteOffset: c, as: UInt8.self)) * scales[c / bc] * x[c]; c += 1 }
            y[r] = s
        }
    }

    /// Token count up to which several tokens share one pass over the FP8 rows (`rowsMany`)
    /// rather than a dequantised copy for OpenBLAS: batched decode stays bound by bytes.
    public static let maximumSharedTokens = 16

    /// `y[t, r]` for `rows` and `tokens` (at most `maximumSharedTokens`), `fast(w)` only:
    /// `quad` holds every token's activations through `LaneOrder.gather` (`activationFactor`), `cols`
    /// apart; `x`'s tail columns are read in natural order. Four tokens per pass over a row
    /// (the row stays in L1 for the next four), each decoded block feeding all four.
    static func rowsMany(_ w: FP8Blocks, cols: Int, rows: Range<Int>, tokens: Int, quad: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        let xr = UnsafeRawPointer(quad), bc = w.blockCols, full = cols & ~63
        for r in rows {
            let row = UnsafeRawPointer(w.bytes + r * cols), scales = w.scaleRow(r)
            for t0 in stride(from: 0, to: tokens, by: 4) {
                // A short last group repeats its last token (computed, not stored).
                let t1 = min(t0 + 1, tokens - 1), t2 = min(t0 + 2, tokens - 1), t3 = min(t0 + 3, tokens - 1)
                let o0 = t0 * cols * 4, o1 = t1 * cols * 4, o2 = t2 * cols * 4, o3 = t3 * cols * 4
                var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
                var c = 0, tile = 0
                while c < full {
                    let end = min(c + bc, full)
                    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                    while c < end {
                        let (q0, q1, q2, q3) = split(row.loadUnaligned(fromByteOffset: c, as: SIMD16<UInt32>.self))
                        @inline(__always) func dot(_ o: Int) -> SIMD16<Float> {
                            var d = q0 * xr.loadUnaligned(fromByteOffset: o + c * 4, as: SIMD16<Float>.self)
                            d.addProduct(q1, xr.loadUnaligned(fromByteOffset: o + c * 4 + 64, as: SIMD16<Float>.self))
                            d.addProduct(q2, xr.loadUnaligned(fromByteOffset: o + c * 4 + 128, as: SIMD16<Float>.self))
                            d.addProduct(q3, xr.loadUnaligned(fromByteOffset: o + c * 4 + 192, as: SIMD16<Float>.self))
                            return d
                        }
                        a0 += dot(o0)
                        a1 += dot(o1)
                        a2 += dot(o2)
                        a3 += dot(o3)
                        c += 64
                    }
                    let scale = SIMD16<Float>(repeating: scales[tile] * scaleFactor)
                    s0.addProduct(a0, scale)
                    s1.addProduct(a1, scale)
                    s2.addProduct(a2, scale)
                    s3.addProduct(a3, scale)
                    tile += 1
                }
                let sums = SIMD4<Float>(s0.sum(), s1.sum(), s2.sum(), s3.sum())
                for (i, t) in (t0..<min(t0 + 4, tokens)).enumerated() {
                    var v = sums[i]
                    for c in full..<cols { v += toFloat(row.load(fromByteOffset: c, as: UInt8.self)) * scales[c / bc] * x[t * ldx + c] }
                    y[t * ldy + r] = v
                }
            }
        }
    }

    /// Rows `rows` of `w` as f32 into `out` (`[rows.count × cols]`), in quad order when
    /// `fast(w)` (multiply the activations in the same order), else in natural order.
    static func dequantize(_ w: FP8Blocks, cols: Int, rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        for (i, r) in rows.enumerated() {
            let row = UnsafeRawPointer(w.bytes + r * cols), scales = w.scaleRow(r), dst = out + i * cols
            guard fast(w) else {
                for c in 0..<cols { dst[c] = toFloat(w.bytes[r * cols + c]) * scales[c / w.blockCols] }
                continue
            }
            let d = UnsafeMutableRawPointer(dst), full = cols & ~63
            var c = 0
            while c < full {
                let s = SIMD16<Float>(repeating: scales[c / w.blockCols])
                let (q0, q1, q2, q3) = split(row.loadUnaligned(fromByteOffset: c, as: SIMD16<UInt32>.self))
                d.storeBytes(of: q0 * 0x1p120 * s, toByteOffset: c * 4, as: SIMD16<Float>.self)
                d.storeBytes(of: q1 * 0x1p120 * s, toByteOffset: c * 4 + 64, as: SIMD16<Float>.self)
                d.storeBytes(of: q2 * 0x1p120 * s, toByteOffset: c * 4 + 128, as: SIMD16<Float>.self)
                d.storeBytes(of: q3 * 0x1p120 * s, toByteOffset: c * 4 + 192, as: SIMD16<Float>.self)
                c += 64
            }
            while c < cols { dst[c] = toFloat(row.load(fromByteOffset: c, as: UInt8.self)) * scales[c / w.blockCols]; c += 1 }
        }
    }

    /// Token count from which a product dequantises the weight to bf16 for oneDNN
    /// (`multiplyBF16`) rather than to f32 for OpenBLAS.
    public static let matmulTokens = maximumSharedTokens + 1

    /// The whole weight dequantised to bf16 (in quad order, activations reordered to match)
    /// and multiplied by `BF16Matmul`: weights carry bf16 rounding on top of the activations'
    /// (relative ~2⁻⁹ each). False, `y` unwritten, when oneDNN declines the product.
    static func multiplyBF16(_ w: FP8Blocks, rows: Int, cols: Int, _ x: UnsafePointer<Float>, ldx: Int,
                             _ y: UnsafeMutablePointer<Float>, ldy: Int, tokens: Int, pool: ComputePool?) -> Bool {
        let weights = BF16Staging.shared.take(count: rows * cols), activations = Scratch(capacity: tokens * cols)
        defer { BF16Staging.shared.give(weights) }
        let wb = weights.halves(count: rows * cols), xq = activations.floats(tokens * cols)
        let body = { (part: Range<Int>) in
            let chunk = 16
            withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk * cols) { buffer in
                for start in stride(from: part.lowerBound, to: part.upperBound, by: chunk) {
                    let n = min(chunk, part.upperBound - start)
                    dequantize(w, cols: cols, rows: start..<start + n, into: buffer.baseAddress!)
                    BF16Matmul.narrow(buffer.baseAddress!, ldx: cols, rows: 0..<n, cols: cols, into: wb + start * cols)
                }
            }
        }
        if let pool { pool.parallelFor(rows, grain: 16, body) } else { body(0..<rows) }
        for t in 0..<tokens { LaneOrder.gather(x + t * ldx, cols: cols, perLane: 4, into: xq + t * cols) }
        let matrix = WeightMatrix(rows: rows, cols: cols, storage: .bf16(wb), owner: weights)
        return BF16Matmul.multiply(matrix, xq, y, tokens: tokens, ldx: cols, ldy: ldy, pool: pool)
    }

    /// `y[c] = Σ_r W[r, c] · x[r]` (one token, single-threaded).
    static func transposed(_ w: FP8Blocks, rows: Int, cols: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        guard fast(w) else {
            y.update(repeating: 0, count: cols)
            for r in 0..<rows {
                let row = w.bytes + r * cols, scales = w.scaleRow(r)
                for c in 0..<cols { y[c] += toFloat(row[c]) * scales[c / w.blockCols] * x[r] }
            }
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { buffer in
            let acc = buffer.baseAddress!, ar = UnsafeMutableRawPointer(acc), full = cols & ~63
            acc.update(repeating: 0, count: cols)
            for r in 0..<rows {
                let row = UnsafeRawPointer(w.bytes + r * cols), scales = w.scaleRow(r)
                // Accumulated ×2⁻⁵⁶ (weights carry 2⁻¹²⁰, activations 2⁶⁴) and restored at the end.
                var c = 0
                while c < full {
                    let a = SIMD16<Float>(repeating: x[r] * activationFactor * scales[c / w.blockCols])
                    let (q0, q1, q2, q3) = split(row.loadUnaligned(fromByteOffset: c, as: SIMD16<UInt32>.self))
                    var v0 = ar.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self)
                    var v1 = ar.loadUnaligned(fromByteOffset: c * 4 + 64, as: SIMD16<Float>.self)
                    var v2 = ar.loadUnaligned(fromByteOffset: c * 4 + 128, as: SIMD16<Float>.self)
                    var v3 = ar.loadUnaligned(fromByteOffset: c * 4 + 192, as: SIMD16<Float>.self)
                    v0.addProduct(a, q0)
                    v1.addProduct(a, q1)
                    v2.addProduct(a, q2)
                    v3.addProduct(a, q3)
                    ar.storeBytes(of: v0, toByteOffset: c * 4, as: SIMD16<Float>.self)
                    ar.storeBytes(of: v1, toByteOffset: c * 4 + 64, as: SIMD16<Float>.self)
                    ar.storeBytes(of: v2, toByteOffset: c * 4 + 128, as: SIMD16<Float>.self)
                    ar.storeBytes(of: v3, toByteOffset: c * 4 + 192, as: SIMD16<Float>.self)
                    c += 64
                }
                while c < cols {
                    acc[c] += toFloat(row.load(fromByteOffset: c, as: UInt8.self)) * scales[c / w.blockCols] * x[r] / scaleFactor
                    c += 1
                }
            }
            LaneOrder.scatter(acc, cols: cols, perLane: 4, factor: scaleFactor, into: y)
        }
    }
}

/// Reused bf16 buffers for dequantised weights: one per concurrent product, kept for the next.
final class BF16Staging: @unchecked Sendable {
    static let shared = BF16Staging()
    private let lock = NSLock()
    private var free: [Allocation] = []

    /// An allocation of at least `count` halves.
    func take(count: Int) -> Allocation {
        let found: Allocation? = lock.withLock {
            guard let i = free.firstIndex(where: { $0.byteCount >= count * 2 }) ?? free.indices.last else { return nil }
            return free.remove(at: i)
        }
        if let found, found.byteCount >= count * 2 { return found }
        return Allocation(byteCount: count * 2)
    }

    func give(_ a: Allocation) { lock.withLock { free.append(a) } }
}
