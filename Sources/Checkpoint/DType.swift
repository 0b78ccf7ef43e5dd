import Kernels

/// Element types a safetensors header may declare. Only the float types load as weights;
/// the integer types are accepted in a header (some checkpoints carry them) but refused by loaders.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = "F32"
    case bf16 = "BF16"
    case f16 = "F16"
    /// OCP FP8 E4M3 "fn": bias 7, no infinities, NaN = S.1111.111, max ±448.
    case f8E4M3 = "F8_E4M3"
    case i64 = "I64"
    case i32 = "I32"
    case u8 = "U8"
    case bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f32, .i32: 4
        case .bf16, .f16: 2
        case .f8E4M3, .u8, .bool: 1
        case .i64: 8
        }
    }

    /// Whether tensors of this type can be loaded as weights.
    public var isFloat: Bool {
        switch self {
        case .f32, .bf16, .f16, .f8E4M3: true
        case .i64, .i32, .u8, .bool: false
        }
    }

    public var description: String { rawValue }
}

/// Vectorised conversions of the checkpoint's float formats to f32.
///
/// F16 and E4M3 decode with one trick: the exponent and mantissa bits, placed at the top of an f32's
/// exponent/mantissa fields, give the value times 2^-(127 - bias) for normal *and* subnormal inputs
/// (an f32 subnormal has the same implicit-zero form), so one multiply by 2^(127 - bias) finishes the job.
public enum FloatConversion {
    // MARK: F16

    @inline(__always)
    static func f16ToF32(_ h: SIMD16<UInt16>) -> SIMD16<Float> {
        let x = SIMD16<UInt32>(truncatingIfNeeded: h)
        let em = x & 0x7FFF
        let finite = unsafeBitCast(unsafeBitCast(em &<< 13, to: SIMD16<Float>.self) * 0x1p112, to: SIMD16<UInt32>.self)
        // All ones where the exponent is 31 (inf/NaN, which keep their payload). Masks, not `replacing(with:where:)`:
        // that one compiles to scalar code and runs 20× slower.
        let special = 0 &- ((em &+ 0x0400) &>> 15)
        let bits = (finite & ~special) | (((em &<< 13) | 0x7F80_0000) & special)
        return unsafeBitCast(bits | ((x & 0x8000) &<< 16), to: SIMD16<Float>.self)
    }

    public static func f16ToF32(_ h: UInt16) -> Float {
        let em = UInt32(h & 0x7FFF)
        let magnitude = em >= 0x7C00 ? Float(bitPattern: (em << 13) | 0x7F80_0000) : Float(bitPattern: em << 13) * 0x1p112
        return Float(bitPattern: magnitude.bitPattern | (UInt32(h & 0x8000) << 16))
    }

    /// Widens `count` IEEE halves at `src` (any alignment) to f32.
    public static func f16ToF32(_ src: UnsafeRawPointer, to dst: UnsafeMutablePointer<Float>, count: Int) {
        let d = UnsafeMutableRawPointer(dst)
        var i = 0
        while i + 16 <= count {
            d.storeBytes(of: f16ToF32(src.loadUnaligned(fromByteOffset: i * 2, as: SIMD16<UInt16>.self)),
                         toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count {
            dst[i] = f16ToF32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            i += 1
        }
    }

    // MARK: F8 E4M3

    @inline(__always)
    static func e4m3ToF32(_ b: SIMD16<UInt8>) -> SIMD16<Float> {
        let x = SIMD16<UInt32>(truncatingIfNeeded: b)
        let em = x & 0x7F
        let finite = unsafeBitCast(unsafeBitCast(em &<< 20, to: SIMD16<Float>.self) * 0x1p120, to: SIMD16<UInt32>.self)
        let nan = (0 &- ((em &+ 1) &>> 7)) & 0x7FC0_0000  // quiet-NaN bits where em == 0x7F
        return unsafeBitCast(finite | nan | ((x & 0x80) &<< 24), to: SIMD16<Float>.self)
    }

    /// Decodes one E4M3 byte: (-1)^s · 2^(e-7) · (1 + m/8), subnormals m/8 · 2^-6, 0x7F/0xFF NaN.
    public static func e4m3ToF32(_ b: UInt8) -> Float {
        let em = UInt32(b & 0x7F)
        let magnitude = em == 0x7F ? Float.nan : Float(bitPattern: em << 20) * 0x1p120
        return b & 0x80 != 0 ? -magnitude : magnitude
    }

    /// Decodes `count` E4M3 bytes at `src`, each multiplied by `scale`, into `dst`.
    @inline(__always)
    static func e4m3ToF32(_ src: UnsafePointer<UInt8>, scale: Float, to dst: UnsafeMutablePointer<Float>, count: Int) {
        let s = UnsafeRawPointer(src), d = UnsafeMutableRawPointer(dst)
        let sv = SIMD16<Float>(repeating: scale)
        var i = 0
        while i + 16 <= count {
            d.storeBytes(of: e4m3ToF32(s.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self)) * sv,
                         toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count {
            dst[i] = e4m3ToF32(src[i]) * scale
            i += 1
        }
    }

    /// Dequantises a row-major `rows × cols` E4M3 matrix: each element times the scale of its
    /// `block` tile, `scales` being the row-major `ceil(rows/block.rows) × ceil(cols/block.cols)` grid.
    /// The last tile in each dimension may be ragged.
    public static func dequantizeE4M3(_ src: UnsafePointer<UInt8>, rows: Int, cols: Int,
                                      scales: UnsafePointer<Float>, block: ModelConfig.BlockSize,
                                      to dst: UnsafeMutablePointer<Float>) {
        let scaleCols = (cols + block.cols - 1) / block.cols
        for r in 0..<rows {
            let scaleRow = scales + (r / block.rows) * scaleCols
            let rowSrc = src + r * cols, rowDst = dst + r * cols
            var c = 0, tile = 0
            while c < cols {
                let n = min(block.cols, cols - c)
                e4m3ToF32(rowSrc + c, scale: scaleRow[tile], to: rowDst + c, count: n)
                c += n
                tile += 1
            }
        }
    }

    /// Encodes `x` as E4M3 rounding to nearest (ties to even), saturating at ±448; NaN → 0x7F.
    /// Scalar and exact: meant for writing test and synthetic checkpoints, not for hot paths.
    public static func f32ToE4M3(_ x: Float) -> UInt8 {
        if x.isNaN { return 0x7F }
        let sign: UInt8 = x.sign == .minus ? 0x80 : 0
        let a = min(abs(x), 448)
        // Binary search over the 127 finite non-negative codes, whose values increase with the code.
        var lo = 0, hi = 0x7E
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if e4m3ToF32(UInt8(mid)) <= a { lo = mid } else { hi = mid - 1 }
        }
        var code = lo
        if code < 0x7E {
            let below = e4m3ToF32(UInt8(code)), above = e4m3ToF32(UInt8(code + 1))
            if a - below > above - a || (a - below == above - a && code % 2 == 1) { code += 1 }
        }
        return sign | UInt8(code)
    }
}
