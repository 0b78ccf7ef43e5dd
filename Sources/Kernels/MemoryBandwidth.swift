import Foundation

/// Streaming read bandwidth of this machine as the kernels see it: every pool thread sums
/// its share of a buffer much larger than the last-level cache.
///
/// The buffer is allocated and touched once and kept, so that a sample can be taken right
/// before and right after each measurement: bandwidth here swings by ±30 % and more within
/// minutes, and one reading at start-up (best of 5 swung between 37 and 64 GB/s while an
/// independent probe read 32–37) does not describe a decode that runs later.
public final class MemoryBandwidth {
    private let buffer: UnsafeMutablePointer<Float>
    private let count: Int
    private let pool: ComputePool

    /// Reads `bytes` bytes per pass (1 GiB: several times any last-level cache seen here) on `pool`'s threads.
    public init(bytes: Int = 1 << 30, pool: ComputePool = .shared) {
        count = bytes / 4
        self.pool = pool
        buffer = .allocate(capacity: count)
        pool.parallelFor(count, grain: 4096) { r in (buffer + r.lowerBound).update(repeating: 1, count: r.count) }
    }

    deinit { buffer.deallocate() }

    public var bytes: Int { count * 4 }
    public var threads: Int { pool.threads }

    /// Bytes per second of the median of `passes` reads of the whole buffer: the median, not
    /// the best, because a sample should describe the moment, not the machine's best.
    public func sample(passes: Int = 3) -> Double {
        var seconds: [Double] = []
        var sink: Float = 0
        for _ in 0..<passes {
            let start = DispatchTime.now().uptimeNanoseconds
            var partial = [Float](repeating: 0, count: pool.threads)
            partial.withUnsafeMutableBufferPointer { sums in
                let sp = sums.baseAddress!
                pool.run { part in
                    let lo = count * part / pool.threads, hi = count * (part + 1) / pool.threads
                    sp[part] = Self.sum(buffer + lo, count: hi - lo)
                }
            }
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            sink += partial.reduce(0, +)
        }
        precondition(sink > 0)
        return Double(bytes) / seconds.sorted()[seconds.count / 2]
    }

    private static func sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        let r = UnsafeRawPointer(p)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        var i = 0
        while i + 64 <= count {
            a0 += r.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            a1 += r.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self)
            a2 += r.loadUnaligned(fromByteOffset: i * 4 + 128, as: SIMD16<Float>.self)
            a3 += r.loadUnaligned(fromByteOffset: i * 4 + 192, as: SIMD16<Float>.self)
            i += 64
        }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < count { s += p[i]; i += 1 }
        return s
    }
}
