/// How products round: the engine's one numerics switch, set once at start-up.
public enum Numerics: String, Sendable, CaseIterable {
    /// Every product in f32 in one fixed order (`ExactRows`): logits match an f32
    /// evaluation of the stored weights and do not depend on batch, chunking, layout or
    /// thread count. The default.
    case exact
    /// Single products (`Linear.apply`) of two or more tokens on bf16 weights (and of
    /// `FP8.matmulTokens` or more on FP8 weights) go to oneDNN with activations rounded to
    /// bf16 (FP8 weights too): faster prefill, results that depend on the batch. Products
    /// run together (`applyMany`) stay exact.
    case fast

    /// The process's setting; set before the first product runs.
    nonisolated(unsafe) public static var mode = Numerics.exact
}

/// `y = x · Wᵀ`: the projection every layer is made of.
///
/// Weights stay in their checkpoint precision (bf16 read straight from the mapped file,
/// block-scaled FP8 likewise) and meet f32 activations in f32 (`ExactRows`): one token
/// decodes weights in registers as it streams them, several tokens decode a few rows once
/// and share them. `Numerics.fast` sends larger bf16 and FP8 products to oneDNN instead.
public enum Linear {
    /// `y[t, r] = Σ_c W[r, c] · x[t, c]` for `t < tokens`; row `t` of `x` starts at `t · ldx`
    /// (defaults to `cols`), row `t` of `y` at `t · ldy` (defaults to `rows`). `exact` keeps a
    /// product exact under `Numerics.fast` too: for products whose result is a discrete
    /// choice (the MoE gate), so choices never depend on batch size.
    public static func apply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                             tokens: Int, ldx: Int? = nil, ldy: Int? = nil, pool: ComputePool? = .shared, exact: Bool = false) {
        let ldx = ldx ?? w.cols, ldy = ldy ?? w.rows
        guard tokens > 0, w.rows > 0 else { return }
        if !exact, Numerics.mode == .fast, fastProduct(w, x, y, tokens: tokens, ldx: ldx, ldy: ldy, pool: pool) { return }
        // One product, the common case (MLA scores every token's block of heads this way): no job arrays.
        var (prepared, ld) = (x, ldx)
        if let order = ExactRows.activationOrder(w.storage) {
            let out = ThreadScratch.current.activations.floats(tokens * w.cols), cols = w.cols
            passRows(tokens, floats: cols, pool) { r in
                ExactRows.prepare(x + r.lowerBound * ldx, tokens: r.count, ldx: ldx, cols: cols, order: order, into: out + r.lowerBound * cols)
            }
            (prepared, ld) = (UnsafePointer(out), w.cols)
        }
        parallelRows(w.rows, grain: 8, pool) { rows in
            ExactRows.rows(w.storage, cols: w.cols, rows, prepared: prepared, ldx: ld, y, ldy: ldy, tokens: tokens)
        }
    }

    /// `Numerics.fast`'s oneDNN products; false when the product stays exact.
    private static func fastProduct(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                    tokens: Int, ldx: Int, ldy: Int, pool: ComputePool?) -> Bool {
        switch w.storage {
        case .f32: false
        case .bf16: tokens >= BF16Matmul.minimumTokens && BF16Matmul.multiply(w, x, y, tokens: tokens, ldx: ldx, ldy: ldy, pool: pool)
        case .fp8(let q):
            tokens >= FP8.matmulTokens && FP8.fast(q)
                && FP8.multiplyBF16(q, rows: w.rows, cols: w.cols, x, ldx: ldx, y, ldy: ldy, tokens: tokens, pool: pool)
        }
    }

    /// Splits output rows over `pool`, or runs them all on the calling thread when `pool` is nil
    /// (small head-sized matrices inside an already parallel region).
    @inline(__always)
    private static func parallelRows(_ rows: Int, grain: Int, _ pool: ComputePool?, _ body: (Range<Int>) -> Void) {
        if let pool { pool.parallelFor(rows, grain: grain, body) } else { body(0..<rows) }
    }

    /// A pass over `rows` rows of `floats` floats (the products' input preparation): split
    /// over `pool` when it is a prompt's worth (`ComputePool.rows`), else on this thread.
    @inline(__always)
    fileprivate static func passRows(_ rows: Int, floats: Int, _ pool: ComputePool?, _ body: (Range<Int>) -> Void) {
        if let pool { pool.rows(rows, floats: floats, body) } else { body(0..<rows) }
    }
}

/// One product of `Linear.applyMany`: `y = x · Wᵀ` over `tokens` rows. A job holds the
/// weight's storage, not the matrix: the caller keeps the matrix alive for the call, and a
/// decode step builds some four hundred jobs that would otherwise each retain and release
/// the weight's owner.
public struct LinearJob {
    public let storage: WeightMatrix.Storage
    public let rows: Int
    public let cols: Int
    public let x: UnsafePointer<Float>
    public let y: UnsafeMutablePointer<Float>
    public let tokens: Int
    public let ldx: Int
    public let ldy: Int
    /// A SwiGLU pair's up projection, with `y` its gate projection (`swiGLU`).
    let up: (storage: WeightMatrix.Storage, y: UnsafeMutablePointer<Float>)?

    public init(_ weight: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int, ldx: Int? = nil, ldy: Int? = nil) {
        self.init(weight, x, y, tokens: tokens, ldx: ldx ?? weight.cols, ldy: ldy ?? weight.rows, up: nil)
    }

    private init(_ weight: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int, ldx: Int, ldy: Int,
                 up: (storage: WeightMatrix.Storage, y: UnsafeMutablePointer<Float>)?) {
        storage = weight.storage
        rows = weight.rows
        cols = weight.cols
        self.x = x
        self.y = y
        self.tokens = tokens
        self.ldx = ldx
        self.ldy = ldy
        self.up = up
    }

    /// `gate = silu(x · gateᵀ) ⊙ (x · upᵀ)` over `tokens` rows (`gate` and `up` `[tokens ×
    /// rows]`; `up` holds the up projection afterwards). Each chunk of the region computes
    /// both projections of its rows and activates them while they are in its cache, so no
    /// serial pass reads them back, half of them from the other core.
    public static func swiGLU(gate: WeightMatrix, up: WeightMatrix, _ x: UnsafePointer<Float>, into gateOut: UnsafeMutablePointer<Float>,
                              upOut: UnsafeMutablePointer<Float>, tokens: Int) -> LinearJob {
        precondition(gate.rows == up.rows && gate.cols == up.cols && gate.bytesPerElement == up.bytesPerElement,
                     "a SwiGLU pair's projections must have one shape and format")
        return LinearJob(gate, x, gateOut, tokens: tokens, ldx: gate.cols, ldy: gate.rows, up: (up.storage, upOut))
    }
}

extension Linear {
    /// Runs independent products in one parallel region, splitting their rows by cost over
    /// the pool (or on the calling thread when `pool` is nil). Decode runs a dozen small
    /// matrices per layer (a token's experts, or the projections that read the same
    /// input); one region for all of them saves a synchronisation per matrix and keeps
    /// both cores streaming. How rows are split never changes a result (`ExactRows`).
    public static func applyMany(_ jobs: [LinearJob], pool: ComputePool? = .shared) {
        // Each distinct input is prepared once (`q_a_proj` and `kv_a_proj_with_mqa` share
        // theirs, as do a decode step's experts), at `offset` in the buffer. Rows are split
        // by cost, not count: with a prompt, a row of the shared expert's product (every
        // token) costs ten of a routed expert's (its dozen tokens). A row of few tokens costs
        // its bytes (decode streams weights), of many its multiply-adds.
        var products: [Product] = [], inputs: [PreparedInput] = []
        var size = 0, total = 0, cheapest = Int.max
        products.reserveCapacity(jobs.count)
        inputs.reserveCapacity(jobs.count)
        for j in jobs where j.tokens > 0 && j.rows > 0 {
            var offset: Int?
            if let order = ExactRows.activationOrder(j.storage) {
                let input = PreparedInput(x: j.x, ldx: j.ldx, tokens: j.tokens, cols: j.cols, order: order, offset: size)
                if let same = inputs.first(where: { $0.isSame(as: input) }) {
                    offset = same.offset
                } else {
                    inputs.append(input)
                    offset = size
                    size += j.tokens * j.cols
                }
            }
            let cost = j.cols * max(j.tokens, 4 * j.storage.bytesPerElement) * (j.up == nil ? 1 : 2)
            products.append(Product(job: j, offset: offset, start: total, cost: cost))
            total += j.rows * cost
            cheapest = min(cheapest, cost)
        }
        guard !products.isEmpty else { return }
        let base = ThreadScratch.current.activations.floats(max(size, 1))
        prepare(inputs, floats: size, into: base, pool: pool)
        let parts = pool.map { min($0.threads * ComputePool.chunksPerThread, max(1, total / (cheapest * 8))) } ?? 1
        let run = { (part: Int) in
            let lo = ComputePool.start(part, of: parts, in: total), hi = ComputePool.start(part + 1, of: parts, in: total)
            products.withUnsafeBufferPointer { products in
                for p in products {
                    let rows = p.boundary(lo) ..< p.boundary(hi)
                    guard !rows.isEmpty else { continue }
                    let j = p.job
                    let (x, ldx) = p.offset.map { (UnsafePointer(base + $0), j.cols) } ?? (j.x, j.ldx)
                    ExactRows.rows(j.storage, cols: j.cols, rows, prepared: x, ldx: ldx, j.y, ldy: j.ldy, tokens: j.tokens)
                    guard let up = j.up else { continue }
                    ExactRows.rows(up.storage, cols: j.cols, rows, prepared: x, ldx: ldx, up.y, ldy: j.ldy, tokens: j.tokens)
                    for t in 0..<j.tokens {
                        let at = t * j.ldy + rows.lowerBound
                        VectorOps.siluMul(j.y + at, up.y + at, count: rows.count)
                    }
                }
            }
        }
        if let pool, parts > 1 { pool.chunks(parts) { _, part in run(part) } } else { run(0) }
    }
}

extension Linear {
    /// Every input in its kernel's order at its offset in `base`. Token rows are independent,
    /// so a prompt's inputs (an MoE layer's gathered tokens: megabytes, which the calling
    /// thread alone took 0.4 ms a layer to prepare while the other core waited) split over the
    /// pool by token; a decode step's few rows stay on the calling thread (`ComputePool.rows`).
    fileprivate static func prepare(_ inputs: [PreparedInput], floats: Int, into base: UnsafeMutablePointer<Float>, pool: ComputePool?) {
        let rows = inputs.reduce(0) { $0 + $1.tokens }
        passRows(rows, floats: floats / max(rows, 1), pool) { range in
            // Input i's tokens are rows `start ..< start + i.tokens` of all inputs'.
            var start = 0
            for i in inputs where start < range.upperBound {
                let lo = max(range.lowerBound, start) - start, hi = min(range.upperBound, start + i.tokens) - start
                if lo < hi {
                    ExactRows.prepare(i.x + lo * i.ldx, tokens: hi - lo, ldx: i.ldx, cols: i.cols, order: i.order, into: base + i.offset + lo * i.cols)
                }
                start += i.tokens
            }
        }
    }
}

/// An input of `applyMany`: where the jobs read it, and where its prepared copy sits in the
/// region's buffer. Plain values, so that comparing and keeping them copies no job.
private struct PreparedInput {
    let x: UnsafePointer<Float>
    let ldx: Int, tokens: Int, cols: Int
    let order: ExactRows.ActivationOrder
    let offset: Int

    func isSame(as o: PreparedInput) -> Bool { x == o.x && ldx == o.ldx && tokens == o.tokens && cols == o.cols && order == o.order }
}

/// A job of `applyMany`, where its prepared input sits in the region's buffer (nil: f32
/// weights read the input as it is) and where its rows fall in the region's cost.
private struct Product {
    let job: LinearJob
    let offset: Int?
    /// The cost before this product's first row, and per row.
    let start: Int, cost: Int

    /// The first row at or past cost `at`, a multiple of 8 rows (or the end).
    func boundary(_ at: Int) -> Int {
        let row = (max(0, at - start) + cost - 1) / cost
        return min(job.rows, (row + 7) / 8 * 8)
    }
}
