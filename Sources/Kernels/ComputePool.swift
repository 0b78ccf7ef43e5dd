internal import COpenBLAS
import Foundation
import Synchronization

/// Persistent worker threads for data-parallel kernels.
///
/// A decode step issues a few hundred short parallel regions (one per matrix), so
/// waking threads through the kernel each time would cost more than the work: workers
/// spin briefly on a generation counter and only then park on a semaphore.
public final class ComputePool: @unchecked Sendable {
    /// Threads used by every kernel in this process (caller included).
    public static let shared = ComputePool(threads: ComputePool.defaultThreads)

    /// `CONCLAVE_THREADS`, else the cores shared among the MPI ranks on this node (all
    /// of them without mpirun), so ranks that share a node do not fight over cores.
    public static var defaultThreads: Int {
        let environment = ProcessInfo.processInfo.environment
        if let s = environment["CONCLAVE_THREADS"], let n = Int(s), n > 0 { return n }
        let ranksHere = environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1
        return max(1, ProcessInfo.processInfo.activeProcessorCount / max(ranksHere, 1))
    }

    public let threads: Int
    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let workers: [Worker]
    nonisolated(unsafe) private var job: ((Int) -> Void)?
    private let lock = NSLock()

    public init(threads: Int) {
        // Parallelism comes from this pool; OpenBLAS runs inside it, one thread per call.
        openblas_set_num_threads(1)
        self.threads = max(1, threads)
        workers = (0..<max(0, threads - 1)).map { _ in Worker() }
        for worker in 0..<(self.threads - 1) {
            let thread = Thread { [unowned self] in self.workerLoop(worker) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(part)` for `part` in `0..<threads`, part 0 on the calling thread.
    public func run(_ body: (Int) -> Void) {
        if threads == 1 { body(0); return }
        lock.lock()
        defer { lock.unlock() }
        withoutActuallyEscaping(body) { escaping in
            job = escaping
            remaining.store(threads - 1, ordering: .releasing)
            generation.add(1, ordering: .sequentiallyConsistent)
            for w in workers where w.parked.exchange(false, ordering: .sequentiallyConsistent) {
                w.wakeup.signal()
            }
            escaping(0)
            while remaining.load(ordering: .acquiring) > 0 {}
            job = nil
        }
    }

    /// Splits `0..<count` into chunks aligned to `grain` and runs them in parallel (`chunks`).
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        parallelChunks(count, grain: grain) { _, range in body(range) }
    }

    /// `parallelFor` that also passes the running thread's index (below `threads`), for
    /// per-thread scratch space.
    public func parallelChunks(_ count: Int, grain: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let units = (count + grain - 1) / grain
        let pieces = min(units, threads * Self.chunksPerThread)
        chunks(pieces) { thread, piece in
            let lo = Self.start(piece, of: pieces, in: units) * grain
            let hi = min(count, Self.start(piece + 1, of: pieces, in: units) * grain)
            if lo < hi { body(thread, lo..<hi) }
        }
    }

    /// Runs `body` over `0..<count` rows of `floats` floats each: split over the pool when
    /// the rows are a prompt's worth of memory traffic (a quarter megabyte or more: a layer's
    /// norms, residual adds and MoE gathers and sums over a prompt, which left the other core
    /// idle), else on the calling thread, where a region would cost more than the pass (a
    /// decode step's few rows).
    public func rows(_ count: Int, floats: Int, _ body: (Range<Int>) -> Void) {
        if count * floats < Self.parallelFloats { body(0..<count) } else { parallelFor(count, grain: 4, body) }
    }

    private static let parallelFloats = 1 << 16

    /// Polls of the generation counter before an idle worker parks: about 70 µs here. A
    /// decode step's serial stretches between regions (norms, routing, sampling) ran past
    /// 7 µs, the previous limit, about a dozen times a step; each park and wake-up cost
    /// context switches, and FP8 batch-1 decode reached 78% of the roofline instead of 86%.
    static let spinsBeforeParking = 200_000

    /// Chunks per thread that a region is cut into: enough that a thread slowed by the host
    /// (or handed heavier rows) costs the others at most one chunk at the region's end.
    public static let chunksPerThread = 4

    /// Where chunk `piece` of `pieces` starts in `0..<total`: chunks shrink from first to last
    /// (the k-th from the end is 2k − 1 times the last), so the thread that finishes first
    /// waits at most for a small one. Equal chunks left it waiting half a chunk on average,
    /// an eighth of a region, at every one of a decode step's seventy-odd regions. Fewer
    /// than `pieces²` units are split evenly, so that no chunk is empty.
    public static func start(_ piece: Int, of pieces: Int, in total: Int) -> Int {
        guard total >= pieces * pieces else { return total * piece / pieces }
        let left = pieces - piece
        return total - total * left * left / (pieces * pieces)
    }

    /// Runs `body(thread, chunk)` for every chunk in `0..<count`, each thread taking the next
    /// chunk as it finishes one. Which thread runs a chunk must not change its result.
    public func chunks(_ count: Int, _ body: (Int, Int) -> Void) {
        if threads == 1 || count <= 1 { for c in 0..<count { body(0, c) }; return }
        let next = Atomic<Int>(0)
        run { thread in
            while case let c = next.wrappingAdd(1, ordering: .relaxed).oldValue, c < count { body(thread, c) }
        }
    }

    private func workerLoop(_ index: Int) {
        let worker = workers[index]
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < Self.spinsBeforeParking { continue }
                worker.parked.store(true, ordering: .sequentiallyConsistent)
                if generation.load(ordering: .sequentiallyConsistent) != seen {
                    // A job arrived while parking: if nobody claimed our flag we go on,
                    // otherwise a signal is on its way and must be consumed.
                    if !worker.parked.exchange(false, ordering: .sequentiallyConsistent) { worker.wakeup.wait() }
                    break
                }
                worker.wakeup.wait()
                spins = 0
            }
            seen = generation.load(ordering: .acquiring)
            job?(index + 1)
            remaining.subtract(1, ordering: .releasing)
        }
    }
}

/// A parked flag and a wake-up signal per worker thread.
private final class Worker: Sendable {
    let parked = Atomic<Bool>(false)
    let wakeup = DispatchSemaphore(value: 0)
}
