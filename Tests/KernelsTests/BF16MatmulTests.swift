import Foundation
import Testing
@testable import Kernels

/// oneDNN's bf16 matmul against an f32 product of the widened weights.
@Suite struct BF16MatmulTests {
    /// A deterministic bf16 weight `[rows × cols]` with values in [-1, 1).
    static func weight(rows: Int, cols: Int, seed: UInt64) -> WeightMatrix {
        let a = Allocation(byteCount: rows * cols * 2)
        let p = a.halves(count: rows * cols)
        var s = seed
        for i in 0..<(rows * cols) {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            p[i] = BF16.fromFloat(Float(s >> 40) / Float(1 << 23) - 1)
        }
        return WeightMatrix(rows: rows, cols: cols, storage: .bf16(p), owner: a)
    }

    static func activations(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<count).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return (Float(s >> 40) / Float(1 << 24) - 0.5) * 4
        }
    }

    /// Runs `multiply` with row strides `ldx`/`ldy` and checks every output against the f32
    /// reference within 1e-2 of the row's Σ|w·x| (bf16 activations err by ≤ 2⁻⁹ relative),
    /// and that padding between output rows is untouched.
    static func check(rows: Int, cols: Int, tokens: Int, ldx: Int, ldy: Int, pool: ComputePool? = .shared) {
        let w = weight(rows: rows, cols: cols, seed: UInt64(rows * 31 + cols))
        let x = activations(tokens * ldx, seed: UInt64(tokens))
        let sentinel: Float = -12345
        var y = [Float](repeating: sentinel, count: tokens * ldy)
        let ok = x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                BF16Matmul.multiply(w, xp.baseAddress!, yp.baseAddress!, tokens: tokens, ldx: ldx, ldy: ldy, pool: pool)
            }
        }
        #expect(ok)
        var widened = [Float](repeating: 0, count: cols)
        var worst: Float = 0
        for r in 0..<rows {
            w.copyRow(r, to: &widened)
            for t in 0..<tokens {
                var exact = 0.0, scale = 0.0
                for c in 0..<cols {
                    let p = Double(widened[c]) * Double(x[t * ldx + c])
                    exact += p
                    scale += abs(p)
                }
                worst = max(worst, Float(abs(Double(y[t * ldy + r]) - exact) / max(scale, 1e-30)))
            }
        }
        #expect(worst < 1e-2, "rows \(rows) cols \(cols) tokens \(tokens): error \(worst) of Σ|w·x|")
        for t in 0..<tokens {
            #expect(y[(t * ldy + rows)..<(t * ldy + ldy)].allSatisfy { $0 == sentinel }, "padding of row \(t) written")
        }
    }

    @Test(arguments: [1, 3, 8, 13, 63, 64, 65, 130, 400, 411])
    func raggedTokens(tokens: Int) {
        Self.check(rows: 300, cols: 256, tokens: tokens, ldx: 256, ldy: 300)
    }

    @Test(arguments: [(rows: 100, cols: 96), (rows: 37, cols: 200), (rows: 1000, cols: 70), (rows: 257, cols: 1027)])
    func oddShapes(shape: (rows: Int, cols: Int)) {
        for tokens in [5, 70] {
            Self.check(rows: shape.rows, cols: shape.cols, tokens: tokens, ldx: shape.cols, ldy: shape.rows)
        }
    }

    @Test(arguments: [9, 96, 390])
    func rowStrides(tokens: Int) {
        Self.check(rows: 200, cols: 160, tokens: tokens, ldx: 190, ldy: 230)
    }

    @Test func callingThreadOnly() {
        Self.check(rows: 300, cols: 128, tokens: 20, ldx: 128, ldy: 300, pool: nil)
        Self.check(rows: 300, cols: 128, tokens: 80, ldx: 140, ldy: 310, pool: nil)
        Self.check(rows: 300, cols: 128, tokens: 400, ldx: 128, ldy: 300, pool: nil)
    }

    @Test func f32WeightsAreRefused() {
        let w = WeightMatrix.f32(rows: 2, cols: 2, values: [1, 2, 3, 4])
        var y = [Float](repeating: 7, count: 2)
        let ok = BF16Matmul.multiply(w, [1, 1], &y, tokens: 1)
        #expect(!ok)
        #expect(y == [7, 7])
    }

    /// oneDNN silently falls back to slow reference kernels for layouts it does not support.
    @Test func usesOptimisedKernels() throws {
        let library = try #require(OneDNN.shared)
        for (tokens, rows, cols) in [(5, 2816, 1024), (128, 1024, 2816), (200, 384, 1024), (400, 1024, 1024)] {
            let names = try #require(library.implementations(tokens: tokens, rows: rows, cols: cols, ldy: rows, threads: 2))
            #expect(names.allSatisfy { $0.hasPrefix("brg:") || $0.hasPrefix("gemm:jit") }, "\(names)")
        }
    }

    @Test func narrowRoundsAsBF16() {
        var x = Self.activations(40, seed: 9)
        x += [.nan, -.nan, Float(bitPattern: 0x7F80_0001), .infinity, -.infinity, -0.0, .leastNonzeroMagnitude,
              Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), .greatestFiniteMagnitude]
        var out = [UInt16](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { BF16Matmul.narrow(xp.baseAddress!, ldx: x.count, rows: 0..<1, cols: x.count, into: $0.baseAddress!) }
        }
        #expect(out == x.map(BF16.fromFloat))
    }
}
