import Checkpoint

/// The compressed KV cache of one sequence: per layer and position only the normalised
/// latent `c_kv` (`kv_lora_rank` values) and the rotated shared key `k_pe`
/// (`qk_rope_head_dim` values) — not per-head keys and values.
public final class LatentCache: @unchecked Sendable {
    public let layers: Int
    /// Floats from one position's row to the next (`ModelConfig.latentCacheRowFloats`): the
    /// latent and the rotated key, then zeros to a whole number of 64-value blocks.
    public let rowStride: Int
    /// Positions whose entries are complete in every layer.
    public private(set) var length = 0
    public private(set) var capacity = 0
    private var rows: [UnsafeMutablePointer<Float>]

    public init(config: ModelConfig, capacity: Int = 256) {
        layers = config.numHiddenLayers
        rowStride = config.latentCacheRowFloats
        rows = []
        reserve(capacity)
    }

    deinit { rows.forEach { $0.deallocate() } }

    /// Makes room for `positions` entries per layer, keeping what is cached.
    public func reserve(_ positions: Int) {
        guard positions > capacity else { return }
        let newCapacity = max(positions, capacity * 2)
        rows = (0..<layers).map { layer in
            let grown = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * rowStride)
            grown.initialize(repeating: 0, count: newCapacity * rowStride)
            if capacity > 0 {
                grown.update(from: rows[layer], count: length * rowStride)
                rows[layer].deallocate()
            }
            return grown
        }
        capacity = newCapacity
    }

    /// The cache rows of `layer`, `[capacity × rowStride]`, row `p` for position `p`.
    public func layer(_ layer: Int) -> UnsafeMutablePointer<Float> { rows[layer] }

    /// Marks `count` more positions complete, once every layer has written them.
    public func commit(_ count: Int) {
        precondition(length + count <= capacity)
        length += count
    }

    public var byteCount: Int { layers * capacity * rowStride * 4 }
}

/// The tokens of one attention step, grouped by sequence: each slice is a run of
/// consecutive tokens of one sequence, continuing where its cache ends.
public struct AttentionBatch {
    public struct Slice {
        public let cache: LatentCache
        /// Index of the slice's first token in the step's token rows.
        public let first: Int
        public let count: Int

        public init(cache: LatentCache, first: Int, count: Int) {
            self.cache = cache
            self.first = first
            self.count = count
        }

        /// Position of the slice's first token in its sequence.
        public var startPosition: Int { cache.length }
    }

    public let slices: [Slice]
    public let tokenCount: Int
    /// Position of every token in its sequence, in token-row order (fixed for the step:
    /// caches only grow at `commit`).
    public let positions: [Int]

    public init(slices: [Slice]) {
        self.slices = slices
        tokenCount = slices.reduce(0) { $0 + $1.count }
        var positions = [Int](repeating: 0, count: tokenCount)
        for s in slices { for i in 0..<s.count { positions[s.first + i] = s.startPosition + i } }
        self.positions = positions
    }

    /// Makes room in every cache for the step's tokens, before the first layer writes them.
    public func reserve() {
        for s in slices { s.cache.reserve(s.startPosition + s.count) }
    }

    /// Commits the step's tokens to their caches after the last layer.
    public func commit() {
        for s in slices { s.cache.commit(s.count) }
    }
}
