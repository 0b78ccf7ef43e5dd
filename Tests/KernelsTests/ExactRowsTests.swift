@testable import Kernels
import Testing

/// `Linear.apply` computes each output element in one order, whatever the call: these
/// compare bits of every token's row against the same token multiplied alone.
@Suite struct ExactRowsTests {
    enum Format: String, CaseIterable, CustomTestStringConvertible {
        case f32, bf16, fp8
        var testDescription: String { rawValue }
    }

    static func matrix(_ format: Format, rows: Int, cols: Int) -> WeightMatrix {
        switch format {
        case .f32:
            return .f32(rows: rows, cols: cols, values: (0..<rows * cols).map { Float(($0 &* 40503) % 211 - 105) / 97 })
        case .bf16: return LinearTests.matrices(rows: rows, cols: cols, seed: 5).bf16
        case .fp8: return FP8Tests.matrix(rows: rows, cols: cols, block: (rows: 16, cols: 48), seed: 2).matrix
        }
    }

    /// Token counts that take every path: one token, four per decoded block, the rest one
    /// by one, and decoded rows shared over column slices; columns that leave a ragged tail
    /// and span several slices.
    @Test(arguments: Format.allCases)
    func tokenCountDoesNotChangeBits(_ format: Format) {
        let rows = 37, cols = 1000, ldx = cols + 3
        let w = Self.matrix(format, rows: rows, cols: cols)
        let x = (0..<40 * ldx).map { Float(($0 * 7919) % 193 - 96) / 61 }
        var alone = [[UInt32]]()
        for t in 0..<40 {
            var y = [Float](repeating: 0, count: rows)
            x.withUnsafeBufferPointer { Linear.apply(w, $0.baseAddress! + t * ldx, &y, tokens: 1) }
            alone.append(y.map(\.bitPattern))
        }
        for tokens in [2, 3, 5, 16, 17, 40] {
            var y = [Float](repeating: 0, count: tokens * rows)
            Linear.apply(w, x, &y, tokens: tokens, ldx: ldx)
            for t in 0..<tokens {
                #expect(y[t * rows ..< (t + 1) * rows].map(\.bitPattern) == alone[t], "\(format): token \(t) of \(tokens)")
            }
        }
    }

    /// The calling thread alone and the pool split rows differently: the same bits.
    @Test(arguments: Format.allCases)
    func threadsDoNotChangeBits(_ format: Format) {
        let rows = 203, cols = 320
        let w = Self.matrix(format, rows: rows, cols: cols)
        let x = (0..<24 * cols).map { Float(($0 * 6151) % 89 - 44) / 29 }
        for tokens in [1, 8, 24] {
            var pooled = [Float](repeating: 0, count: tokens * rows), single = pooled
            Linear.apply(w, x, &pooled, tokens: tokens)
            Linear.apply(w, x, &single, tokens: tokens, pool: nil)
            #expect(pooled.map(\.bitPattern) == single.map(\.bitPattern), "\(format), \(tokens) tokens")
        }
    }

    /// The AVX-512 kernels give the Swift kernels' bits on every path: one to three tokens on
    /// four rows, up to eight tokens on two, decoded rows over one or several column slices
    /// (accumulators parked between slices, folded and stored by the last), one block per row
    /// (sixteen rows to a register), a row of tail columns only, ragged row and token edges.
    /// FP8 rows span several row tiles (up to three tokens read each tile's activations in
    /// one call), also in a slice whose first row is inside a tile (an expert shard's).
    @Test(.enabled(if: ExactKernel.avx512Supported), arguments: Format.allCases, [40, 64, 1000, 2100])
    func avx512MatchesPortable(_ format: Format, cols: Int) {
        let ldx = cols + 3
        let whole = Self.matrix(format, rows: 42, cols: cols)
        let x = (0..<40 * ldx).map { Float(($0 * 7919) % 193 - 96) / 61 }
        for (w, slice) in [(whole, "whole"), (whole.rows(5..<42), "from row 5")] {
            let rows = w.rows
            for tokens in [1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 23, 40] {
                var (prepared, ld) = (x, ldx)
                if let order = ExactRows.activationOrder(w.storage) {
                    ExactRows.prepare(x, tokens: tokens, ldx: ldx, cols: cols, order: order, into: &prepared)
                    ld = cols
                }
                func product(_ kernel: ExactKernel, _ range: Range<Int>) -> [UInt32] {
                    var y = [Float](repeating: .nan, count: tokens * rows)
                    ExactRows.rows(w.storage, cols: cols, range, prepared: prepared, ldx: ld, &y, ldy: rows, tokens: tokens, kernel: kernel)
                    return y.map(\.bitPattern)
                }
                for range in [0..<rows, 5..<30] {
                    #expect(product(.avx512, range) == product(.portable, range), "\(format), \(slice), \(cols) columns, \(tokens) tokens, rows \(range)")
                }
            }
        }
    }

    /// Nine to 32 tokens whose activations outgrow L1 run eight tokens at a time over blocks
    /// of row pairs (a megabyte of rows each: three blocks of f32 rows here, two of bf16):
    /// the bits of the portable kernel, which takes each row pair's tokens in turn (and
    /// tiles above sixteen).
    @Test(.enabled(if: ExactKernel.avx512Supported), arguments: Format.allCases)
    func avx512TokenPassesOverRowBlocksMatchPortable(_ format: Format) {
        let rows = 257, cols = 2100
        let w = Self.matrix(format, rows: rows, cols: cols)
        let x = (0..<32 * cols).map { Float(($0 * 7919) % 193 - 96) / 61 }
        for tokens in [9, 16, 32] {
            var prepared = x
            if let order = ExactRows.activationOrder(w.storage) {
                ExactRows.prepare(x, tokens: tokens, ldx: cols, cols: cols, order: order, into: &prepared)
            }
            func product(_ kernel: ExactKernel) -> [UInt32] {
                var y = [Float](repeating: .nan, count: tokens * rows)
                ExactRows.rows(w.storage, cols: cols, 0..<rows, prepared: prepared, ldx: cols, &y, ldy: rows, tokens: tokens, kernel: kernel)
                return y.map(\.bitPattern)
            }
            #expect(product(.avx512) == product(.portable), "\(format), \(tokens) tokens")
        }
    }

    /// A row tile's activations (in lane order) times their columns' scales and the power, bit
    /// for bit (the kernels' products rely on it): with scale columns a whole number of blocks
    /// wide (DeepSeek's 128: one factor per block) and ragged ones (one per lane), the tail too.
    @Test(arguments: [128, 48])
    func rowTileScalesMultiplyEachColumnByItsScale(blockCols: Int) {
        let cols = 300, ldx = cols + 5, tokens = 2, power: Float = 0x1p16, full = cols - cols % 64
        let m = FP8Tests.matrix(rows: 20, cols: cols, block: (rows: 8, cols: blockCols), seed: 3).matrix
        guard case .fp8(let q) = m.storage else { Issue.record("not FP8"); return }
        let x = (0..<tokens * ldx).map { Float(($0 * 7919) % 193 - 96) / 61 }
        var out = [Float](repeating: .nan, count: tokens * cols)
        FP8Decoder.scale(q, row: 9, cols: cols, x, ldx: ldx, tokens: tokens, by: power, into: &out)
        let scales = q.scaleRow(9)
        // Position 64b + 16k + i of a whole block holds column 64b + 4i + k.
        func column(_ p: Int) -> Int { p < full ? p - p % 64 + 4 * (p % 16) + (p % 64) / 16 : p }
        let expected = (0..<tokens * cols).map { i in (x[i / cols * ldx + i % cols] * (scales[column(i % cols) / blockCols] * power)).bitPattern }
        #expect(out.map(\.bitPattern) == expected)
    }

    /// The AVX-512 gather puts activations in the same places, times the same factor, as
    /// the portable one: whole blocks, a lone 32-column block, ragged tails.
    @Test(.enabled(if: ExactKernel.avx512Supported), arguments: [7, 32, 64, 100, 1027], [2, 4])
    func avx512GatherMatchesPortable(cols: Int, perLane: Int) {
        let x = (0..<2 * cols + 3).map { Float(($0 * 7919) % 97 - 48) / 32 }
        let order = ExactRows.ActivationOrder(perLane: perLane, factor: perLane == 4 ? FP8.activationFactor : 1)
        var portable = [Float](repeating: .nan, count: 2 * cols), avx512 = portable
        ExactRows.prepare(x, tokens: 2, ldx: cols + 3, cols: cols, order: order, into: &portable, kernel: .portable)
        ExactRows.prepare(x, tokens: 2, ldx: cols + 3, cols: cols, order: order, into: &avx512, kernel: .avx512)
        #expect(portable.map(\.bitPattern) == avx512.map(\.bitPattern))
    }

    /// A SwiGLU job gives the bits of its two products and `siluMul` run one after the other,
    /// whatever rows the region's chunks hand each thread: on every token path, on a row
    /// count no chunk boundary divides evenly.
    @Test(arguments: Format.allCases)
    func swiGLUMatchesSeparateSteps(_ format: Format) {
        let rows = 203, cols = 320
        let gate = Self.matrix(format, rows: rows, cols: cols)
        let up = switch format {
        case .f32: WeightMatrix.f32(rows: rows, cols: cols, values: (0..<rows * cols).map { Float(($0 &* 7103) % 199 - 99) / 83 })
        case .bf16: LinearTests.matrices(rows: rows, cols: cols, seed: 9).bf16
        case .fp8: FP8Tests.matrix(rows: rows, cols: cols, block: (rows: 16, cols: 48), seed: 7).matrix
        }
        let x = (0..<40 * cols).map { Float(($0 * 6151) % 89 - 44) / 29 }
        for tokens in [1, 3, 12, 40] {
            var g = [Float](repeating: 0, count: tokens * rows), u = g, fusedG = g, fusedU = g
            Linear.apply(gate, x, &g, tokens: tokens)
            Linear.apply(up, x, &u, tokens: tokens)
            VectorOps.siluMul(&g, u, count: tokens * rows)
            x.withUnsafeBufferPointer { xp in
                fusedG.withUnsafeMutableBufferPointer { gp in
                    fusedU.withUnsafeMutableBufferPointer { up2 in
                        Linear.applyMany([LinearJob.swiGLU(gate: gate, up: up, xp.baseAddress!, into: gp.baseAddress!,
                                                           upOut: up2.baseAddress!, tokens: tokens)])
                    }
                }
            }
            #expect(fusedG.map(\.bitPattern) == g.map(\.bitPattern), "\(format), \(tokens) tokens")
        }
    }
}
