import Foundation
import Kernels
import Testing

/// The vectorised exponential and the activations built on it, against the C library in
/// double precision.
@Suite struct VectorOpsTests {
    /// Units in the last place of `value` (a Float) away from `exact`.
    static func ulps(_ value: Float, _ exact: Double) -> Double {
        abs(Double(value) - exact) / Double(Float(exact).ulp)
    }

    @Test func expIsWithinTwoUlps() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            let lanes = SIMD16<Float>((0..<16).map { x + Float($0) * 0.000_37 })
            let e = VectorOps.exp(lanes)
            for k in 0..<16 { worst = max(worst, Self.ulps(e[k], Foundation.exp(Double(lanes[k])))) }
            x += 0.0061
        }
        #expect(worst <= 2, "worst error \(worst) ulps")
        #expect(VectorOps.exp(SIMD16(repeating: 0)) == SIMD16(repeating: 1))
    }

    /// Past the clamped range the results stand in for the limits the callers need.
    @Test func expOutsideItsRange() {
        let low = VectorOps.exp(SIMD16(repeating: -1000)), high = VectorOps.exp(SIMD16(repeating: 1000))
        #expect(low[0] > 0 && low[0] < 1e-37)
        #expect(high[0].isFinite && high[0] > 1e38)
        #expect(VectorOps.exp(SIMD16(repeating: .nan))[0].isNaN)
    }

    /// Counts with and without a ragged tail; every element, tail or not, as SiLU defines it.
    @Test(arguments: [1, 15, 16, 17, 100])
    func siluMulMatchesDefinition(count: Int) {
        var gate = (0..<count).map { Float($0 % 23) * 0.9 - 10 }
        let up = (0..<count).map { Float($0 % 5) - 2 }
        let expected = zip(gate, up).map { g, u in Double(g) / (1 + Foundation.exp(-Double(g))) * Double(u) }
        gate.withUnsafeMutableBufferPointer { VectorOps.siluMul($0.baseAddress!, up, count: count) }
        for i in 0..<count { #expect(abs(Double(gate[i]) - expected[i]) <= 1e-6 * max(1, abs(expected[i])), "element \(i)") }
        // Large negative inputs give (nearly) zero, large positive ones the input itself.
        var extremes: [Float] = [-200, 200]
        extremes.withUnsafeMutableBufferPointer { VectorOps.siluMul($0.baseAddress!, [1, 1], count: 2) }
        #expect(abs(extremes[0]) < 1e-30 && extremes[1] == 200)
    }

    @Test(arguments: [1, 7, 16, 33])
    func softmaxMatchesDefinition(count: Int) {
        // One value far below the others, whose exponential is (nearly) zero.
        var x = (0..<count).map { i -> Float in i == 3 ? -95 : Float((i * 37) % 11) - 5 }
        let top = Double(x.max()!)
        let e = x.map { Foundation.exp(Double($0) - top) }, sum = e.reduce(0, +)
        x.withUnsafeMutableBufferPointer { VectorOps.softmax($0.baseAddress!, count: count) }
        for i in 0..<count { #expect(abs(Double(x[i]) - e[i] / sum) <= 1e-6, "element \(i)") }
        #expect(abs(x.reduce(0, +) - 1) < 1e-5)
    }
}
