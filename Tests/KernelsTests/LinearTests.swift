import Kernels
import Testing

/// The bf16 SIMD kernels against a plain f32 product of the same (widened) weights.
@Suite struct LinearTests {
    /// A bf16 matrix with values that are exact in bf16, and its f32 twin.
    static func matrices(rows: Int, cols: Int, seed: Int) -> (bf16: WeightMatrix, f32: [Float]) {
        let values = (0..<rows * cols).map { i in Float((i &* 2_654_435_761 &+ seed) % 257 - 128) / 64 }
        let a = Allocation(byteCount: rows * cols * 2)
        let p = a.halves(count: rows * cols)
        for (i, v) in values.enumerated() { p[i] = BF16.fromFloat(v) }
        return (WeightMatrix(rows: rows, cols: cols, storage: .bf16(p), owner: a), values)
    }

    static func reference(_ w: [Float], rows: Int, cols: Int, _ x: [Float], tokens: Int, ldx: Int) -> [Float] {
        (0..<tokens).flatMap { t in
            (0..<rows).map { r in (0..<cols).reduce(Float(0)) { $0 + w[r * cols + $1] * x[t * ldx + $1] } }
        }
    }

    static func activations(_ count: Int) -> [Float] { (0..<count).map { Float(($0 * 7919) % 97 - 48) / 32 } }

    // Columns cover whole 64-blocks, a lone 32-block and a ragged tail; one token takes the
    // SIMD kernel (two or more go to oneDNN, tested in BF16MatmulTests).
    @Test(arguments: [(3, 128), (17, 96), (5, 1027), (40, 33), (8, 7)])
    func singleTokenMatchesF32(shape: (Int, Int)) {
        let (rows, cols) = shape
        let (w, f) = Self.matrices(rows: rows, cols: cols, seed: rows)
        let x = Self.activations(cols + 5)
        var y = [Float](repeating: .nan, count: rows + 3)
        Linear.apply(w, x, &y, tokens: 1, ldx: cols + 5, ldy: rows + 3)
        let expected = Self.reference(f, rows: rows, cols: cols, x, tokens: 1, ldx: cols + 5)
        for r in 0..<rows { #expect(abs(y[r] - expected[r]) <= 1e-3 * max(1, abs(expected[r])), "row \(r)") }
        #expect(y[rows].isNaN, "writes past the row")
    }

    /// `transposed()` holds the same bf16 values, and its product is the transposed product.
    @Test(arguments: [(64, 256), (7, 70), (16, 31)])
    func transposedMatchesF32(shape: (Int, Int)) {
        let (rows, cols) = shape
        let (w, f) = Self.matrices(rows: rows, cols: cols, seed: 3)
        let t = w.transposed()
        #expect(t.rows == cols && t.cols == rows)
        FP8Tests.expectTransposed(w, dense: f, rows: rows, cols: cols)
    }

    /// `VectorOps.mix` adds each element's rows in order, one fused multiply-add each: the
    /// same bits as one `axpy` per row, for any number of outputs in the call.
    @Test(arguments: [1, 3, 4, 6, 9])
    func mixMatchesAxpyInOrder(outputs: Int) {
        let count = 37, cols = 40, stride = 45, ld = 39
        let rows = Self.activations(count * stride).map { $0 * 1.37 }
        let weights = (0..<outputs * ld).map { Float(($0 * 613) % 101) / 97 }
        var mixed = [Float](repeating: .nan, count: outputs * cols)
        VectorOps.mix(weights, ld: ld, outputs: outputs, rows: rows, stride: stride, count: count, cols: cols, into: &mixed)
        for i in 0..<outputs {
            var want = [Float](repeating: 0, count: cols)
            for j in 0..<count {
                for c in 0..<cols { want[c].addProduct(weights[i * ld + j], rows[j * stride + c]) }
            }
            #expect(Array(mixed[i * cols..<(i + 1) * cols]) == want, "output \(i)")
        }
    }

    @Test func applyManyMatchesSeparateProducts() {
        let a = Self.matrices(rows: 48, cols: 96, seed: 1), b = Self.matrices(rows: 13, cols: 96, seed: 2)
        let x = Self.activations(96)
        var ya = [Float](repeating: 0, count: 48), yb = [Float](repeating: 0, count: 13)
        x.withUnsafeBufferPointer { xp in
            ya.withUnsafeMutableBufferPointer { pa in
                yb.withUnsafeMutableBufferPointer { pb in
                    Linear.applyMany([LinearJob(a.bf16, xp.baseAddress!, pa.baseAddress!, tokens: 1),
                                      LinearJob(b.bf16, xp.baseAddress!, pb.baseAddress!, tokens: 1)])
                }
            }
        }
        let ea = Self.reference(a.f32, rows: 48, cols: 96, x, tokens: 1, ldx: 96)
        let eb = Self.reference(b.f32, rows: 13, cols: 96, x, tokens: 1, ldx: 96)
        for i in ea.indices { #expect(abs(ya[i] - ea[i]) <= 1e-3 * max(1, abs(ea[i]))) }
        for i in eb.indices { #expect(abs(yb[i] - eb[i]) <= 1e-3 * max(1, abs(eb[i]))) }
    }

    /// A prompt's inputs (here 81,920 floats) are prepared by token over the pool: every
    /// product, with its input cut between threads anywhere, gives the bits it gives alone
    /// on one thread. Inputs of different lengths and row strides; the last job reads the
    /// first job's input.
    @Test func promptSizedInputsPreparedOverThePoolGiveTheSameBits() {
        let cols = 256, ldx = cols + 3
        let shapes = [(rows: 24, tokens: 40, input: 0), (rows: 16, tokens: 120, input: 1), (rows: 8, tokens: 160, input: 2),
                      (rows: 12, tokens: 40, input: 0)]
        let matrices = shapes.indices.map { Self.matrices(rows: shapes[$0].rows, cols: cols, seed: $0 + 5).bf16 }
        let inputs = [40, 120, 160].map { tokens in
            let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: tokens * ldx)
            _ = x.initialize(from: Self.activations(tokens * ldx))
            return x
        }
        let outputs = shapes.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: 2 * $0.tokens * $0.rows) }
        defer { (inputs + outputs).forEach { $0.deallocate() } }
        Linear.applyMany(shapes.indices.map { k in
            LinearJob(matrices[k], inputs[shapes[k].input].baseAddress!, outputs[k].baseAddress!, tokens: shapes[k].tokens, ldx: ldx)
        })
        for (k, shape) in shapes.enumerated() {
            let n = shape.tokens * shape.rows
            Linear.apply(matrices[k], inputs[shape.input].baseAddress!, outputs[k].baseAddress! + n, tokens: shape.tokens, ldx: ldx, pool: nil)
            #expect(outputs[k][..<n].map(\.bitPattern) == outputs[k][n...].map(\.bitPattern), "job \(k)")
        }
    }
}
