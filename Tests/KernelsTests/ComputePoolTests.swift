import Kernels
import Synchronization
import Testing

@Suite struct ComputePoolTests {
    /// Chunks tile the range, none empty, each no larger than the one before.
    @Test(arguments: [(8, 8), (8, 63), (8, 64), (8, 1000), (2, 5), (16, 100_000)])
    func chunksShrinkAndCoverTheRange(pieces: Int, total: Int) {
        let starts = (0...pieces).map { ComputePool.start($0, of: pieces, in: total) }
        #expect(starts.first == 0 && starts.last == total)
        let sizes = zip(starts.dropFirst(), starts).map { $0 - $1 }
        #expect(sizes.allSatisfy { $0 > 0 }, "\(sizes)")
        if total >= pieces * pieces { #expect(zip(sizes, sizes.dropFirst()).allSatisfy { $0 >= $1 }, "\(sizes)") }
    }

    /// Every index runs exactly once, however the chunks fall on threads.
    @Test(arguments: [1, 7, 64, 10_000])
    func parallelForVisitsEveryIndexOnce(count: Int) {
        let visits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        defer { visits.deallocate() }
        visits.initialize(repeating: 0)
        ComputePool.shared.parallelFor(count, grain: 3) { range in
            for i in range { visits[i] += 1 }
        }
        #expect(visits.allSatisfy { $0 == 1 })
    }

    /// A pass over a decode step's few rows stays on the calling thread in one call; a
    /// prompt's is split over the pool; either way every row runs once.
    @Test(arguments: [(6, 1024, false), (1024, 1024, true), (70_000, 1, true)])
    func rowsSplitOnlyPromptSizedPasses(count: Int, floats: Int, split: Bool) {
        let visits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        defer { visits.deallocate() }
        visits.initialize(repeating: 0)
        let calls = Atomic<Int>(0)
        ComputePool.shared.rows(count, floats: floats) { range in
            calls.add(1, ordering: .relaxed)
            for i in range { visits[i] += 1 }
        }
        #expect(visits.allSatisfy { $0 == 1 })
        #expect(calls.load(ordering: .relaxed) == (split && ComputePool.shared.threads > 1 ? ComputePool.shared.threads * ComputePool.chunksPerThread : 1))
    }
}
