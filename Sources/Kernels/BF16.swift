/// bfloat16 is the top half of an IEEE f32: widening is a 16-bit shift, narrowing rounds to nearest even.
public enum BF16 {
    @inline(__always)
    public static func widen(_ v: SIMD16<UInt16>) -> SIMD16<Float> {
        unsafeBitCast(SIMD16<UInt32>(truncatingIfNeeded: v) &<< 16, to: SIMD16<Float>.self)
    }

    @inline(__always)
    public static func toFloat(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    @inline(__always)
    public static func fromFloat(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        if f.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// Widens `count` bfloat16 values at `src` (any alignment) to f32.
    public static func widen(_ src: UnsafeRawPointer, to dst: UnsafeMutablePointer<Float>, count: Int) {
        let d = UnsafeMutableRawPointer(dst)
        var i = 0
        while i + 16 <= count {
            d.storeBytes(of: widen(src.loadUnaligned(fromByteOffset: i * 2, as: SIMD16<UInt16>.self)), toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count { dst[i] = toFloat(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)); i += 1 }
    }
}
