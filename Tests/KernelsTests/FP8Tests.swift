import Checkpoint
import Kernels
import Testing

/// The block-scaled FP8 kernels against a plain f32 product of the dequantised weights
/// (`FloatConversion.e4m3ToF32` × the tile's scale).
@Suite struct FP8Tests {
    /// An FP8 matrix of finite codes with varied scales, and its dequantised f32 twin.
    struct Case {
        let matrix: WeightMatrix
        let dense: [Float]
    }

    static func matrix(rows: Int, cols: Int, block: (rows: Int, cols: Int), seed: Int,
                       code: ((Int, Int) -> UInt8)? = nil) -> Case {
        let scaleRows = (rows + block.rows - 1) / block.rows, scaleCols = (cols + block.cols - 1) / block.cols
        let bytes = Allocation(byteCount: rows * cols)
        let q = bytes.raw.bindMemory(to: UInt8.self, capacity: max(rows * cols, 1))
        for r in 0..<rows {
            for c in 0..<cols {
                var b = code?(r, c) ?? UInt8(truncatingIfNeeded: (r * cols + c) &* 2_654_435_761 &+ seed &* 97 >> 7)
                if b & 0x7F == 0x7F { b ^= 0x01 }  // NaN codes are not weights
                q[r * cols + c] = b
            }
        }
        let scaleStore = Allocation(byteCount: scaleRows * scaleCols * 4)
        let s = scaleStore.floats(count: scaleRows * scaleCols)
        for i in 0..<scaleRows * scaleCols { s[i] = Float((i * 37 + seed) % 23 + 1) * 0x1p-10 * (i % 3 == 0 ? 3.7 : 1) }
        var dense = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for c in 0..<cols {
                dense[r * cols + c] = FloatConversion.e4m3ToF32(q[r * cols + c]) * s[(r / block.rows) * scaleCols + c / block.cols]
            }
        }
        let blocks = FP8Blocks(bytes: q, scales: s, scaleCols: scaleCols, blockRows: block.rows, blockCols: block.cols)
        return Case(matrix: WeightMatrix(rows: rows, cols: cols, storage: .fp8(blocks), owner: Owners([bytes, scaleStore])), dense: dense)
    }

    static func activations(_ count: Int, seed: Int = 0) -> [Float] {
        (0..<count).map { Float(($0 * 7919 + seed) % 97 - 48) / 32 }
    }

    /// `y[t, r]` in double, and the sum of |terms| that bounds its rounding error.
    static func reference(_ w: [Float], rows: Int, cols: Int, _ x: [Float], tokens: Int, ldx: Int) -> (y: [Double], scale: [Double]) {
        var y: [Double] = [], scale: [Double] = []
        for t in 0..<tokens {
            for r in 0..<rows {
                var s = 0.0, m = 0.0
                for c in 0..<cols {
                    let p = Double(w[r * cols + c]) * Double(x[t * ldx + c])
                    s += p
                    m += abs(p)
                }
                y.append(s)
                scale.append(m)
            }
        }
        return (y, scale)
    }

    static func expectClose(_ got: Float, _ want: Double, _ magnitude: Double, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(abs(Double(got) - want) <= 2e-6 * magnitude + 1e-30, "\(got) vs \(want)", sourceLocation: sourceLocation)
    }

    /// Shapes: 128 × 128 tiles with ragged rows and columns (a partial 64-block and a
    /// scalar tail), tiles of 64 and 192 columns, and tiles the SIMD kernel does not take
    /// (16 × 16, 2 × 4).
    static let shapes: [(rows: Int, cols: Int, br: Int, bc: Int)] = [
        (130, 200, 128, 128), (7, 512, 128, 128), (33, 1000, 16, 128), (20, 320, 3, 64),
        (9, 400, 5, 192), (40, 64, 16, 16), (5, 9, 2, 4), (3, 70, 2, 128),
    ]

    @Test(arguments: shapes.indices)
    func singleTokenMatchesF32(_ i: Int) {
        let s = Self.shapes[i]
        let m = Self.matrix(rows: s.rows, cols: s.cols, block: (s.br, s.bc), seed: i)
        let x = Self.activations(s.cols)
        var y = [Float](repeating: .nan, count: s.rows)
        Linear.apply(m.matrix, x, &y, tokens: 1)
        let ref = Self.reference(m.dense, rows: s.rows, cols: s.cols, x, tokens: 1, ldx: s.cols)
        for r in 0..<s.rows { Self.expectClose(y[r], ref.y[r], ref.scale[r]) }
        // copyRow dequantises exactly.
        var row = [Float](repeating: .nan, count: s.cols)
        m.matrix.copyRow(s.rows - 1, to: &row)
        #expect(row == Array(m.dense[(s.rows - 1) * s.cols..<s.rows * s.cols]))
    }

    /// `transposed()` keeps every weight's value (its byte and its tile's scale), on whole,
    /// ragged and one-column tiles; its product is the transposed product.
    @Test(arguments: shapes.indices)
    func transposedMatchesF32(_ i: Int) {
        let s = Self.shapes[i]
        let m = Self.matrix(rows: s.rows, cols: s.cols, block: (s.br, s.bc), seed: i + 11)
        Self.expectTransposed(m.matrix, dense: m.dense, rows: s.rows, cols: s.cols)
    }

    /// Every column of `w.transposed()` read back equals `dense`'s, and its one-token product
    /// matches the transposed product in double (any format: LinearTests uses it for bf16).
    static func expectTransposed(_ w: WeightMatrix, dense: [Float], rows: Int, cols: Int) {
        let t = w.transposed()
        var column = [Float](repeating: .nan, count: rows)
        for c in 0..<cols {
            t.copyRow(c, to: &column)
            #expect(column == (0..<rows).map { dense[$0 * cols + c] }, "column \(c)")
        }
        let x = activations(rows, seed: 5)
        var y = [Float](repeating: .nan, count: cols)
        Linear.apply(t, x, &y, tokens: 1)
        for c in 0..<cols {
            var want = 0.0, mag = 0.0
            for r in 0..<rows {
                let p = Double(dense[r * cols + c]) * Double(x[r])
                want += p
                mag += abs(p)
            }
            expectClose(y[c], want, mag)
        }
    }

    /// Several tokens (streamed four to a block up to 16, decoded rows shared beyond), with
    /// strided activations and outputs; under `Numerics.fast` products from
    /// `FP8.matmulTokens` tokens are dequantised to bf16 for oneDNN (`exact` false: the
    /// looser bound of bf16-rounded weights and activations).
    @Test(arguments: [(0, 2, false), (0, 5, false), (1, 16, false), (3, 7, false), (2, 3, false), (4, 17, false),
                      (0, 40, false), (0, 40, true), (4, 17, true), (5, 2, false), (6, 4, false), (6, 20, false)])
    func severalTokensMatchF32(_ args: (Int, Int, Bool)) {
        let (i, tokens, exact) = args
        let s = Self.shapes[i]
        let m = Self.matrix(rows: s.rows, cols: s.cols, block: (s.br, s.bc), seed: i + 3)
        let ldx = s.cols + 3, ldy = s.rows + 2
        let x = Self.activations(tokens * ldx, seed: 9)
        var y = [Float](repeating: .nan, count: tokens * ldy)
        Linear.apply(m.matrix, x, &y, tokens: tokens, ldx: ldx, ldy: ldy, exact: exact)
        let ref = Self.reference(m.dense, rows: s.rows, cols: s.cols, x, tokens: tokens, ldx: ldx)
        let bf16 = !exact && tokens >= FP8.matmulTokens && s.bc % 64 == 0
        for t in 0..<tokens {
            for r in 0..<s.rows {
                let (got, want, mag) = (y[t * ldy + r], ref.y[t * s.rows + r], ref.scale[t * s.rows + r])
                if bf16 {
                    #expect(abs(Double(got) - want) <= 0x1p-7 * mag, "\(got) vs \(want)")
                } else {
                    Self.expectClose(got, want, mag)
                }
            }
            #expect(y[t * ldy + s.rows].isNaN && y[t * ldy + s.rows + 1].isNaN)  // padding untouched
        }
    }

    /// Row slices starting inside a tile (a head's block of `kv_b_proj`) find their scales.
    @Test func rowSlicesStartingMidTile() {
        let rows = 70, cols = 384
        for block in [(16, 128), (128, 128), (5, 4)] {
            let m = Self.matrix(rows: rows, cols: cols, block: block, seed: 7)
            for range in [3..<19, 16..<32, 17..<70, 0..<1, 69..<70, 30..<45] {
                let slice = m.matrix.rows(range)
                let dense = Array(m.dense[range.lowerBound * cols..<range.upperBound * cols])
                let x = Self.activations(cols)
                var y = [Float](repeating: .nan, count: range.count)
                Linear.apply(slice, x, &y, tokens: 1, pool: nil)
                let ref = Self.reference(dense, rows: range.count, cols: cols, x, tokens: 1, ldx: cols)
                for r in 0..<range.count { Self.expectClose(y[r], ref.y[r], ref.scale[r]) }

                var y2 = [Float](repeating: .nan, count: 2 * range.count)
                let x2 = Self.activations(2 * cols, seed: 1)
                Linear.apply(slice, x2, &y2, tokens: 2)
                let ref2 = Self.reference(dense, rows: range.count, cols: cols, x2, tokens: 2, ldx: cols)
                for r in 0..<2 * range.count { Self.expectClose(y2[r], ref2.y[r], ref2.scale[r]) }

                Self.expectTransposed(slice, dense: dense, rows: range.count, cols: cols)
            }
        }
    }

    /// Every byte value decodes as E4M3 (NaN codes, which weights never hold, as ±480),
    /// through the scalar decoder and through the SIMD kernels at one, twelve and 256 tokens,
    /// zeros and subnormals included (one-hot activations pick single columns, so each
    /// output is one weight times its scale).
    @Test func allByteValues() {
        for b in 0...255 {
            let v = FP8.toFloat(UInt8(b))
            if b & 0x7F == 0x7F {
                #expect(v == (b & 0x80 == 0 ? 480 : -480))
            } else {
                #expect(v.bitPattern == FloatConversion.e4m3ToF32(UInt8(b)).bitPattern, "byte \(b)")
            }
        }
        let cols = 256, rows = 4
        let m = Self.matrix(rows: rows, cols: cols, block: (2, 128), seed: 1) { r, c in UInt8((c + 61 * r) & 0xFF) }
        // Token t picks column t: one token at a time, a dozen (streamed blocks) and all 256
        // (decoded rows).
        let identity = (0..<cols * cols).map { $0 / cols == $0 % cols ? Float(1) : 0 }
        for tokens in [1, 12, 256] {
            for first in stride(from: 0, to: cols, by: tokens) {
                let n = min(tokens, cols - first)
                var y = [Float](repeating: .nan, count: n * rows)
                identity.withUnsafeBufferPointer { Linear.apply(m.matrix, $0.baseAddress! + first * cols, &y, tokens: n) }
                for t in 0..<n {
                    for r in 0..<rows { #expect(y[t * rows + r] == m.dense[r * cols + first + t], "row \(r) column \(first + t), \(tokens) tokens") }
                }
            }
        }
        // Every code appears in some row: the 254 finite ones decode exactly.
        var seen = Set<UInt8>()
        for r in 0..<rows { for c in 0..<cols { seen.insert(UInt8((c + 61 * r) & 0xFF)) } }
        #expect(seen.count == 256)
    }

    /// `applyMany` fuses single-token FP8 products and runs several-token ones alone.
    @Test func applyManyMixesJobs() {
        let a = Self.matrix(rows: 50, cols: 256, block: (128, 128), seed: 1)
        let b = Self.matrix(rows: 31, cols: 256, block: (16, 128), seed: 2)
        let c = Self.matrix(rows: 12, cols: 256, block: (128, 128), seed: 3)
        let x = Self.activations(3 * 256)
        var ya = [Float](repeating: .nan, count: 50), yb = [Float](repeating: .nan, count: 31), yc = [Float](repeating: .nan, count: 36)
        x.withUnsafeBufferPointer { xp in
            ya.withUnsafeMutableBufferPointer { ap in
                yb.withUnsafeMutableBufferPointer { bp in
                    yc.withUnsafeMutableBufferPointer { cp in
                        Linear.applyMany([LinearJob(a.matrix, xp.baseAddress!, ap.baseAddress!, tokens: 1),
                                          LinearJob(b.matrix, xp.baseAddress! + 256, bp.baseAddress!, tokens: 1),
                                          LinearJob(c.matrix, xp.baseAddress!, cp.baseAddress!, tokens: 3)])
                    }
                }
            }
        }
        let ra = Self.reference(a.dense, rows: 50, cols: 256, x, tokens: 1, ldx: 256)
        let rb = Self.reference(b.dense, rows: 31, cols: 256, Array(x[256...]), tokens: 1, ldx: 256)
        let rc = Self.reference(c.dense, rows: 12, cols: 256, x, tokens: 3, ldx: 256)
        for r in 0..<50 { Self.expectClose(ya[r], ra.y[r], ra.scale[r]) }
        for r in 0..<31 { Self.expectClose(yb[r], rb.y[r], rb.scale[r]) }
        for r in 0..<36 { Self.expectClose(yc[r], rc.y[r], rc.scale[r]) }
    }
}
