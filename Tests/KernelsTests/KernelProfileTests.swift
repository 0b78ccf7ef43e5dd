@testable import Kernels
import Testing

/// `KernelProfile`: calls counted by the path the kernels take, with their exact work.
@Suite struct KernelProfileTests {
    @Test func pathsFollowTheKernelsTokenLimits() {
        #expect(KernelPath(tokens: 1, cols: 128) == .oneToken)
        #expect(KernelPath(tokens: 2, cols: 128) == .fewTokens && KernelPath(tokens: 3, cols: 128) == .fewTokens)
        #expect(KernelPath(tokens: 4, cols: 128) == .streamed && KernelPath(tokens: 16, cols: 128) == .streamed)
        #expect(KernelPath(tokens: 17, cols: 64) == .oneBlock && KernelPath(tokens: 16, cols: 64) == .streamed)
        #expect(KernelPath(tokens: 17, cols: 128) == .tiles && KernelPath(tokens: 128, cols: 1024) == .tiles)
        // Rows too wide for twelve decoded copies in L1 stream up to 32 tokens on AVX-512.
        let wide: KernelPath = ExactKernel.chosen == .avx512 ? .streamed : .tiles
        #expect(KernelPath(tokens: 32, cols: 683) == wide && KernelPath(tokens: 32, cols: 682) == .tiles)
        #expect(KernelPath(tokens: 33, cols: 1024) == .tiles)
    }

    /// Each product lands in its path with its multiply-adds and weight bytes. Products of other
    /// tests running at the same time may add to the totals, never take from them.
    @Test func measureCountsEachProductInItsPath() {
        let shapes: [(tokens: Int, rows: Int, cols: Int, path: KernelPath)] = [
            (1, 24, 192, .oneToken), (3, 24, 192, .fewTokens), (9, 24, 192, .streamed), (20, 32, 64, .oneBlock), (40, 24, 192, .tiles),
        ]
        let matrices = shapes.map { LinearTests.matrices(rows: $0.rows, cols: $0.cols, seed: $0.tokens).bf16 }
        let paths = KernelProfile.measure {
            for (s, w) in zip(shapes, matrices) {
                let x = LinearTests.activations(s.tokens * s.cols)
                var y = [Float](repeating: 0, count: s.tokens * s.rows)
                Linear.apply(w, x, &y, tokens: s.tokens, pool: nil)
            }
        }
        for s in shapes {
            let t = paths[s.path]
            #expect((t?.calls ?? 0) >= 1, "\(s.path)")
            #expect((t?.flops ?? 0) >= Double(2 * s.rows * s.cols * s.tokens), "\(s.path)")
            #expect((t?.weightBytes ?? 0) >= Double(2 * s.rows * s.cols), "\(s.path)")
            #expect((t?.seconds ?? 0) > 0, "\(s.path)")
        }
    }
}
