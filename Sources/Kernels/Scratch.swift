/// A reusable f32 buffer that grows to the largest size asked of it, so the per-token
/// path allocates nothing once warmed up. Each component owns its own buffers.
public final class Scratch: @unchecked Sendable {
    private var storage: UnsafeMutablePointer<Float>
    private var capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 16)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    /// At least `count` floats; contents are unspecified and invalidated by a larger request.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            storage.deallocate()
            capacity = max(count, capacity * 2)
            storage = .allocate(capacity: capacity)
        }
        return storage
    }
}
