import Foundation
import Testing
@testable import Checkpoint

/// E4M3 by the book: (-1)^s · 2^(e-7) · (1 + m/8); e = 0: m/8 · 2^-6; S.1111.111: NaN.
func e4m3Reference(_ b: UInt8) -> Float {
    let sign: FloatingPointSign = b & 0x80 != 0 ? .minus : .plus
    let e = Int((b >> 3) & 0xF), m = Float(b & 7)
    if e == 15 && m == 7 { return .nan }
    if e == 0 { return Float(sign: sign, exponent: -6, significand: m / 8) }
    return Float(sign: sign, exponent: e - 7, significand: 1 + m / 8)
}

@Suite struct Conversions {
    @Test func e4m3KnownValues() {
        #expect(FloatConversion.e4m3ToF32(0x38) == 1)
        #expect(FloatConversion.e4m3ToF32(0xB8) == -1)
        #expect(FloatConversion.e4m3ToF32(0x7E) == 448)        // largest finite
        #expect(FloatConversion.e4m3ToF32(0xFE) == -448)
        #expect(FloatConversion.e4m3ToF32(0x7F).isNaN)           // the only NaNs
        #expect(FloatConversion.e4m3ToF32(0xFF).isNaN)
        #expect(FloatConversion.e4m3ToF32(0x01) == 0x1p-9)       // smallest subnormal
        #expect(FloatConversion.e4m3ToF32(0x07) == 7 * 0x1p-9)   // largest subnormal
        #expect(FloatConversion.e4m3ToF32(0x08) == 0x1p-6)       // smallest normal
        #expect(FloatConversion.e4m3ToF32(0x00) == 0)
        #expect(FloatConversion.e4m3ToF32(0x80) == 0 && FloatConversion.e4m3ToF32(0x80).sign == .minus)
        #expect(FloatConversion.e4m3ToF32(0x78) == 256)          // e = 15 is finite in E4M3fn
    }

    @Test func e4m3AllCodesScalarAndVector() {
        let codes = (0...255).map(UInt8.init)
        var out = [Float](repeating: 0, count: 256)
        codes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                FloatConversion.e4m3ToF32(src.baseAddress!, scale: 1, to: dst.baseAddress!, count: 256)
            }
        }
        for b in codes {
            let expected = e4m3Reference(b)
            let scalar = FloatConversion.e4m3ToF32(b)
            if expected.isNaN {
                #expect(scalar.isNaN && out[Int(b)].isNaN, "code \(b)")
            } else {
                #expect(scalar.bitPattern == expected.bitPattern, "code \(b)")
                #expect(out[Int(b)].bitPattern == expected.bitPattern, "code \(b) (SIMD)")
            }
        }
    }

    @Test func e4m3EncodeRoundTrips() {
        for b in (0...255).map(UInt8.init) where b & 0x7F != 0x7F {
            #expect(FloatConversion.f32ToE4M3(FloatConversion.e4m3ToF32(b)) == b || b == 0x80, "code \(b)")
        }
        #expect(FloatConversion.f32ToE4M3(1000) == 0x7E)         // saturates
        #expect(FloatConversion.f32ToE4M3(-1000) == 0xFE)
        #expect(FloatConversion.f32ToE4M3(.nan) == 0x7F)
        #expect(FloatConversion.f32ToE4M3(1.0625) == 0x38)       // halfway 1 and 1.125: ties to even
        #expect(FloatConversion.f32ToE4M3(1.1) == 0x39)
    }

    @Test func f16AllCodes() {
        let codes = (0...0xFFFF).map(UInt16.init)
        var out = [Float](repeating: 0, count: codes.count)
        codes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { FloatConversion.f16ToF32(src.baseAddress!, to: $0.baseAddress!, count: codes.count) }
        }
        let wrong = codes.filter { h in
            let expected = Float(Float16(bitPattern: h)), vector = out[Int(h)], scalar = FloatConversion.f16ToF32(h)
            return expected.isNaN
                ? !(vector.isNaN && scalar.isNaN)
                : vector.bitPattern != expected.bitPattern || scalar.bitPattern != expected.bitPattern
        }
        #expect(wrong.isEmpty, "halves decoded wrongly: \(wrong.prefix(8))")
        #expect(FloatConversion.f16ToF32(0x0001) == 0x1p-24)
        #expect(FloatConversion.f16ToF32(0x7C00) == .infinity && FloatConversion.f16ToF32(0xFC00) == -.infinity)
    }

    @Test func raggedDequantization() {
        // 5 × 40 with 2 × 16 tiles: a 3 × 3 scale grid whose last row covers one row and last column 8 columns.
        let rows = 5, cols = 40
        var q = [UInt8](repeating: 0x38, count: rows * cols)  // 1.0
        q[0 * cols + 0] = 0x7E   // 448
        q[1 * cols + 17] = 0x01  // 2^-9
        q[2 * cols + 5] = 0x7F   // NaN
        q[3 * cols + 33] = 0xFF  // NaN
        q[4 * cols + 16] = 0xB8  // -1
        q[4 * cols + 39] = 0x3C  // 1.5
        let scales: [Float] = [2, 4, 8,
                               0.25, 0.5, 16,
                               3, 5, 0.5]
        var out = [Float](repeating: 0, count: rows * cols)
        q.withUnsafeBufferPointer { src in
            scales.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { dst in
                    FloatConversion.dequantizeE4M3(src.baseAddress!, rows: rows, cols: cols, scales: s.baseAddress!,
                                                   block: .init(rows: 2, cols: 16), to: dst.baseAddress!)
                }
            }
        }
        // Hand-computed corner cases.
        #expect(out[0] == 896)
        #expect(out[1 * cols + 17] == 0x1p-7)
        #expect(out[2 * cols + 5].isNaN && out[3 * cols + 33].isNaN)
        #expect(out[4 * cols + 16] == -5)
        #expect(out[4 * cols + 39] == 0.75)
        #expect(out[4 * cols + 0] == 3 && out[4 * cols + 32] == 0.5)   // ragged last tile row
        #expect(out[1 * cols + 39] == 8 && out[3 * cols + 32] == 16)   // ragged last tile column
        // Every element: its code times the scale of its tile.
        for r in 0..<rows {
            for c in 0..<cols where !out[r * cols + c].isNaN {
                #expect(out[r * cols + c] == e4m3Reference(q[r * cols + c]) * scales[(r / 2) * 3 + c / 16], "(\(r), \(c))")
            }
        }
    }
}
