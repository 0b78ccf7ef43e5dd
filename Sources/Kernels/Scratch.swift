import Foundation

/// A reusable f32 buffer that grows to the largest size asked of it, so the per-token
/// path allocates nothing once warmed up. Each component owns its own buffers. Aligned
/// to cache lines: a vector load that straddles two lines costs two.
public final class Scratch: @unchecked Sendable {
    private var storage: UnsafeMutablePointer<Float>
    private var capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 16)
        storage = Self.allocate(self.capacity)
    }

    deinit { storage.deallocate() }

    /// At least `count` floats; contents are unspecified and invalidated by a larger request.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            storage.deallocate()
            capacity = max(count, capacity * 2)
            storage = Self.allocate(capacity)
        }
        return storage
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(to: Float.self, capacity: count)
    }
}

/// Buffers the matrix kernels reuse on each thread: products run hundreds of times per
/// step, and a fresh megabyte-sized allocation each time costs page faults and zeroing
/// (a tenth of prefill time when measured).
final class ThreadScratch {
    /// The prepared activations of a product (`Linear.applyMany`, on the calling thread).
    let activations = Scratch()
    /// Rows decoded to f32, their accumulators between column slices, and activations
    /// scaled for an FP8 row tile (inside a part).
    let decoded = Scratch(), partial = Scratch(), scaled = Scratch()
    /// This thread's `KernelProfile` counters.
    let profile = PathCounters()

    private init() { KernelProfile.register(profile) }

    /// A POSIX thread-specific slot: the thread dictionary's lookup cost 3% of prefill,
    /// at several lookups per product.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { if let held = $0 { Unmanaged<ThreadScratch>.fromOpaque(held).release() } }
        return key
    }()

    /// This thread's buffers.
    static var current: ThreadScratch {
        if let found = pthread_getspecific(key) { return Unmanaged<ThreadScratch>.fromOpaque(found).takeUnretainedValue() }
        let made = ThreadScratch()
        pthread_setspecific(key, Unmanaged.passRetained(made).toOpaque())
        return made
    }
}
