import Foundation

/// Streaming read bandwidth of this machine as the kernels see it: every pool thread sums
/// its share of a buffer much larger than the last-level cache.
public enum MemoryBandwidth {
    /// Best-of-`repeats` bytes per second reading `bytes` bytes.
    public static func measure(bytes: Int = 1 << 30, repeats: Int = 5, pool: ComputePool = .shared) -> Double {
        let count = bytes / 4
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        pool.parallelFor(count, grain: 4096) { r in (buffer + r.lowerBound).update(repeating: 1, count: r.count) }
        var best = Double.infinity
        var sink: Float = 0
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            var partial = [Float](repeating: 0, count: pool.threads)
            partial.withUnsafeMutableBufferPointer { sums in
                let sp = sums.baseAddress!
                pool.run { part in
                    let lo = count * part / pool.threads, hi = count * (part + 1) / pool.threads
                    sp[part] = sum(buffer + lo, count: hi - lo)
                }
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            sink += partial.reduce(0, +)
        }
        precondition(sink > 0)
        return Double(count * 4) / best
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
