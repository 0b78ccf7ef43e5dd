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

    /// Whether `multiplyBF16` and `dequantize`'s vector path apply: every tile is a whole
    /// number of 64-column blocks (DeepSeek's 128 × 128), so a block never straddles two scales.
    @inline(__always)
    static func fast(_ q: FP8Blocks) -> Bool { q.blockCols % 64 == 0 }

    /// Activations enter the dot products scaled by 2⁴⁸ and the sums leave them multiplied
    /// by 2⁵⁶, which carries the 2¹⁰⁴ the AVX-512 kernels' widening leaves out (`value ·
    /// 2⁻¹⁰⁴`, a normal f32 for every E4M3 value: a subnormal operand costs a microcode
    /// assist in each multiply-add on the Xeons measured). The portable kernels widen with
    /// `split` (`value · 2⁻¹²⁰`, subnormal weights as f32 subnormals) and give the
    /// activations another 2¹⁶ with the tile's scales (`FP8Decoder.scale`). Either way each
    /// product is the same real number, so both give the same bits (short of activations
    /// whose product with their tile's scale is below 2⁻¹⁷⁴, subnormal at 2⁴⁸).
    static let activationFactor: Float = 0x1p48
    static let scaleFactor: Float = 0x1p56
    static let portableFactor: Float = 0x1p16

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

    /// Token count from which `Numerics.fast` dequantises the weight to bf16 for oneDNN
    /// (`multiplyBF16`); fewer stay exact (batched decode is bound by bytes, where a bf16
    /// copy of the weight only adds traffic).
    public static let matmulTokens = 17

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
