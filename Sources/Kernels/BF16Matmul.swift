internal import COneDNN
import Foundation

/// `y = x · Wᵀ` for a bf16 weight and many tokens under `Numerics.fast`, on oneDNN's bf16
/// matmul (`brg:avx512_core_bf16`): at 128 tokens 700–960 GFLOP/s on the project's 2-core
/// Zen 5 machines, activation rounding included, where the SIMD kernel of that time reached
/// 70–80; on the 2026-11-29 Intel Xeon 138–162 GFLOP/s, below its f32 FMA peak.
///
/// - The weight is read in place: its row-major `[N × K]` storage is described to oneDNN
///   as the `[K × N]` weights with strides `{1, K}`. brgemm packs it per call; a cached
///   reorder into oneDNN's blocked layout would be ~7 % faster at 128 tokens for a second
///   copy of every weight, not worth it.
/// - Activations are rounded to bf16 into a reused buffer: oneDNN 2.6 has no f32 × bf16
///   matmul (`unimplemented`).
/// - oneDNN runs single-threaded inside the `ComputePool`, one part per pool thread, never
///   with its own OpenMP threads: those spin after every call and slowed the pool's next
///   regions by 40–100 % (with `OMP_WAIT_POLICY=passive` they sleep, but oneDNN itself
///   is 25 % slower), and would compete with pool workers for the same cores.
/// - Primitives are built once per shape and token count (0.15–0.3 ms and ~75 KB per
///   shape) and cached:
///   rounding token counts up to share primitives costs more per call (time grows linearly
///   with tokens) than building them once.
public enum BF16Matmul {
    /// Token count from which `Numerics.fast` uses `multiply`: on Zen 5 it beat the SIMD
    /// kernel of that time on every shape measured, 1.2–1.7× at 2 tokens with weights
    /// streamed from memory (2–4× with weights in cache), 10–14× at 128. At 1 token the SIMD
    /// kernel streams weights faster (46 vs 32 GB/s for a 64 MB matrix).
    public static let minimumTokens = 2

    /// `y[t, r] = Σ_c W[r, c] · x[t, c]` for `t < tokens`, as `Linear.apply`: row `t` of `x`
    /// starts at `t · ldx` (defaults to `cols`), row `t` of `y` at `t · ldy` (defaults to
    /// `rows`). Activations are rounded to bf16 first, so results carry bf16 input error
    /// (relative ~1e-3 of the row's magnitude), accumulated in f32.
    ///
    /// Runs on `pool`, or on the calling thread alone when `pool` is nil; calls are serialised.
    /// Returns false without writing `y` when `w` is not bf16 or oneDNN cannot build the
    /// product, so the caller falls back to another kernel (false after an execution error,
    /// which has not been seen, leaves `y` partly written).
    public static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                tokens: Int, ldx: Int? = nil, ldy: Int? = nil, pool: ComputePool? = .shared) -> Bool {
        guard case .bf16(let wp) = w.storage, w.cols > 0 else { return false }
        guard tokens > 0, w.rows > 0 else { return true }
        guard let library = OneDNN.shared else { return false }
        return library.multiply(wp, rows: w.rows, cols: w.cols, x, ldx: ldx ?? w.cols, y, ldy: ldy ?? w.rows,
                                tokens: tokens, pool: pool)
    }

    /// Rounds rows `rows` of `x` (row stride `ldx`) to bf16 (nearest even, as `BF16.fromFloat`),
    /// packed `[· × cols]` into `out`.
    public static func narrow(_ x: UnsafePointer<Float>, ldx: Int, rows: Range<Int>, cols: Int, into out: UnsafeMutablePointer<UInt16>) {
        let vec = cols & ~7
        for r in rows {
            let src = UnsafeRawPointer(x + r * ldx), dst = UnsafeMutableRawPointer(out + r * cols)
            var c = 0
            while c < vec {
                // Eight lanes: with SIMD16 this select compiles to scalar code (40× slower).
                let bits = src.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<UInt32>.self)
                let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
                // All ones where the magnitude is above infinity's (a NaN): keep its top half, quiet.
                let above = SIMD8<UInt32>(repeating: 0x7F80_0000) &- (bits & 0x7FFF_FFFF)
                let nan = unsafeBitCast(unsafeBitCast(above, to: SIMD8<Int32>.self) &>> 31, to: SIMD8<UInt32>.self)
                let h = (rounded & ~nan) | (((bits &>> 16) | 0x40) & nan)
                dst.storeBytes(of: SIMD8<UInt16>(truncatingIfNeeded: h), toByteOffset: c * 2, as: SIMD8<UInt16>.self)
                c += 8
            }
            while c < cols { out[r * cols + c] = BF16.fromFloat(x[r * ldx + c]); c += 1 }
        }
    }
}

/// The process's oneDNN engine, the matmul plans it has built, and the buffers they share.
final class OneDNN: @unchecked Sendable {
    /// nil when oneDNN cannot create a CPU engine.
    static let shared = OneDNN()

    /// Plans kept before the cache is emptied (each holds JIT kernels and memory objects, ~75 KB).
    static let planLimit = 1024
    /// Token count from which parts split token rows rather than output columns.
    static let tokenSplit = 384

    private let engine: dnnl_engine_t
    private let lock = NSLock()
    private var plans: [Plan.Key: Plan?] = [:]
    private var source = Buffer()
    /// Per part (they run concurrently): a stream, and oneDNN's scratchpad plus staging rows.
    private var streams: [dnnl_stream_t] = []
    private var workspaces: [Buffer] = []

    private init?() {
        var engine: dnnl_engine_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        self.engine = engine
    }

    func multiply(_ w: UnsafePointer<UInt16>, rows: Int, cols: Int, _ x: UnsafePointer<Float>, ldx: Int,
                  _ y: UnsafeMutablePointer<Float>, ldy: Int, tokens: Int, pool: ComputePool?) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        // Primitives are created for, and run with, one thread: oneDNN sizes its OpenMP team
        // from the calling thread's setting, at creation and at execution.
        OpenMP.limitCallingThread()
        guard let plan = plan(tokens: tokens, rows: rows, cols: cols, ldy: ldy, threads: pool?.threads ?? 1) else { return false }
        while streams.count < plan.parts.count {
            var stream: dnnl_stream_t?
            guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let stream else { return false }
            streams.append(stream)
            workspaces.append(Buffer())
        }
        let src = source.reserve(bytes: tokens * cols * 2).assumingMemoryBound(to: UInt16.self)
        let spaces = plan.parts.indices.map { workspaces[$0].reserve(bytes: plan.parts[$0].workspaceBytes) }
        let streams = self.streams
        // One flag per part, each written by the thread running that part.
        let done = UnsafeMutableBufferPointer<Bool>.allocate(capacity: plan.parts.count)
        defer { done.deallocate() }
        done.initialize(repeating: false)
        let run = { (p: Int) in
            guard p < plan.parts.count else { return }
            OpenMP.limitCallingThread()
            done[p] = plan.parts[p].execute(w, src, y, workspace: spaces[p], stream: streams[p])
        }
        if let pool {
            pool.parallelFor(tokens, grain: 4) { BF16Matmul.narrow(x, ldx: ldx, rows: $0, cols: cols, into: src) }
        } else {
            BF16Matmul.narrow(x, ldx: ldx, rows: 0..<tokens, cols: cols, into: src)
        }
        if let pool, plan.parts.count > 1 { pool.run(run) } else { run(0) }
        return done.allSatisfy { $0 }
    }

    /// oneDNN's names for the kernels of the product's parts (for tests and diagnostics).
    func implementations(tokens: Int, rows: Int, cols: Int, ldy: Int, threads: Int) -> [String]? {
        lock.lock()
        defer { lock.unlock() }
        OpenMP.limitCallingThread()
        return plan(tokens: tokens, rows: rows, cols: cols, ldy: ldy, threads: threads)?.parts.map(\.implementation)
    }

    /// Up to a few hundred tokens, output columns are split over threads, so each weight is
    /// packed once (by one part), through staging rows so brgemm sees dense outputs. From
    /// `tokenSplit` tokens, token rows are split and written in place: 1–10 % faster there,
    /// up to 2× slower for few tokens (each part packs the whole weight).
    private func plan(tokens: Int, rows: Int, cols: Int, ldy: Int, threads: Int) -> Plan? {
        let splitTokens = tokens >= Self.tokenSplit
        let key = Plan.Key(tokens: tokens, rows: rows, cols: cols, ldy: ldy,
                           parts: splitTokens ? min(threads, tokens / 32) : min(threads, max(1, rows / 128)),
                           splitTokens: splitTokens)
        if let cached = plans[key] { return cached }
        if plans.count >= Self.planLimit { plans.removeAll() }
        let made = Plan(key, engine: engine)
        plans[key] = .some(made)
        return made
    }
}

/// One matmul primitive per part of the output (a block of token rows or of columns).
/// `ComputePeak` measures the bf16 peak on one of its parts.
final class Plan {
    struct Key: Hashable {
        let tokens, rows, cols, ldy, parts: Int
        let splitTokens: Bool
    }

    let parts: [Part]

    init?(_ key: Key, engine: dnnl_engine_t) {
        var parts: [Part] = []
        for p in 0..<key.parts {
            let t = key.splitTokens ? Self.share(key.tokens, p, of: key.parts, grain: 16) : 0..<key.tokens
            let c = key.splitTokens ? 0..<key.rows : Self.share(key.rows, p, of: key.parts, grain: 64)
            guard !t.isEmpty, !c.isEmpty, let part = Part(tokens: t, columns: c, key: key, engine: engine) else { return nil }
            parts.append(part)
        }
        self.parts = parts
    }

    private static func share(_ count: Int, _ p: Int, of parts: Int, grain: Int) -> Range<Int> {
        let units = (count + grain - 1) / grain
        return min(count, units * p / parts * grain)..<min(count, units * (p + 1) / parts * grain)
    }

    final class Part {
        let tokens, columns: Range<Int>
        let cols, ldy: Int
        let primitive: dnnl_primitive_t
        let descriptor: dnnl_primitive_desc_t
        let src, weights, dst, scratchpad: dnnl_memory_t
        let scratchpadBytes: Int
        /// Output through dense staging rows, then copied: oneDNN 2.6's brgemm matmul takes
        /// only dense outputs, and gemm:jit, which it picks otherwise, is up to 1.8× slower
        /// for few tokens. (Many tokens are split by rows: their outputs are dense when `ldy` is `N`.)
        let staged: Bool

        var workspaceBytes: Int { Self.align(scratchpadBytes) + (staged ? tokens.count * columns.count * 4 : 0) }

        init?(tokens: Range<Int>, columns: Range<Int>, key: Key, engine: dnnl_engine_t) {
            self.tokens = tokens
            self.columns = columns
            cols = key.cols
            ldy = key.ldy
            staged = !key.splitTokens && columns.count != key.ldy
            let m = Int64(tokens.count), n = Int64(columns.count), k = Int64(key.cols)
            var srcMD = dnnl_memory_desc_t(), weightsMD = dnnl_memory_desc_t(), dstMD = dnnl_memory_desc_t()
            guard Self.describe(&srcMD, [m, k], dnnl_bf16, strides: [k, 1]),
                  Self.describe(&weightsMD, [k, n], dnnl_bf16, strides: [1, k]),
                  Self.describe(&dstMD, [m, n], dnnl_f32, strides: [staged ? n : Int64(key.ldy), 1]) else { return nil }
            var op = dnnl_matmul_desc_t()
            guard dnnl_matmul_desc_init(&op, &srcMD, &weightsMD, nil, &dstMD) == dnnl_success else { return nil }
            var attr: dnnl_primitive_attr_t?
            guard dnnl_primitive_attr_create(&attr) == dnnl_success, let attr else { return nil }
            defer { dnnl_primitive_attr_destroy(attr) }
            // Our own scratchpad per part: the library's is per primitive, unsafe to share across threads.
            guard dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success else { return nil }
            var pd: dnnl_primitive_desc_t?
            guard dnnl_primitive_desc_create(&pd, &op, attr, engine, nil) == dnnl_success, let pd else { return nil }
            var primitive: dnnl_primitive_t?
            guard dnnl_primitive_create(&primitive, pd) == dnnl_success, let primitive else {
                dnnl_primitive_desc_destroy(pd)
                return nil
            }
            descriptor = pd
            self.primitive = primitive
            let scratchMD = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)!
            scratchpadBytes = dnnl_memory_desc_get_size(scratchMD)
            func memory(_ md: UnsafePointer<dnnl_memory_desc_t>) -> dnnl_memory_t? {
                var mem: dnnl_memory_t?
                return dnnl_memory_create(&mem, md, engine, nil) == dnnl_success ? mem : nil
            }
            let made = [memory(&srcMD), memory(&weightsMD), memory(&dstMD), memory(scratchMD)]
            guard let s = made[0], let w = made[1], let d = made[2], let sp = made[3] else {
                for case let m? in made { dnnl_memory_destroy(m) }
                dnnl_primitive_destroy(primitive)
                dnnl_primitive_desc_destroy(pd)
                return nil
            }
            (src, weights, dst, scratchpad) = (s, w, d, sp)
        }

        deinit {
            for m in [src, weights, dst, scratchpad] { dnnl_memory_destroy(m) }
            dnnl_primitive_destroy(primitive)
            dnnl_primitive_desc_destroy(descriptor)
        }

        /// oneDNN's name for the kernel it chose (`brg:avx512_core_bf16`, `gemm:jit`, `ref:any`…).
        var implementation: String {
            var info: UnsafePointer<CChar>?
            dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &info)
            return info.map { String(cString: $0) } ?? "?"
        }

        /// Runs this part; `x` is the whole bf16 activation block, `y` the caller's output.
        func execute(_ w: UnsafePointer<UInt16>, _ x: UnsafePointer<UInt16>, _ y: UnsafeMutablePointer<Float>,
                     workspace: UnsafeMutableRawPointer, stream: dnnl_stream_t) -> Bool {
            let out = y + tokens.lowerBound * ldy + columns.lowerBound
            let staging = (workspace + Self.align(scratchpadBytes)).assumingMemoryBound(to: Float.self)
            guard dnnl_memory_set_data_handle(src, UnsafeMutableRawPointer(mutating: x + tokens.lowerBound * cols)) == dnnl_success,
                  dnnl_memory_set_data_handle(weights, UnsafeMutableRawPointer(mutating: w + columns.lowerBound * cols)) == dnnl_success,
                  dnnl_memory_set_data_handle(dst, staged ? staging : out) == dnnl_success,
                  dnnl_memory_set_data_handle(scratchpad, workspace) == dnnl_success else { return false }
            var args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: src), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weights),
                        dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dst), dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratchpad)]
            guard dnnl_primitive_execute(primitive, stream, Int32(args.count), &args) == dnnl_success,
                  dnnl_stream_wait(stream) == dnnl_success else { return false }
            if staged {
                let n = columns.count
                for t in 0..<tokens.count { (out + t * ldy).update(from: staging + t * n, count: n) }
            }
            return true
        }

        private static func align(_ bytes: Int) -> Int { (bytes + 63) & ~63 }

        private static func describe(_ md: inout dnnl_memory_desc_t, _ dims: [Int64], _ type: dnnl_data_type_t, strides: [Int64]) -> Bool {
            // dnnl_dims_t is int64_t[DNNL_MAX_NDIMS]: pass full-length arrays.
            let d = dims + Array(repeating: 0, count: 12 - dims.count), s = strides + Array(repeating: 0, count: 12 - strides.count)
            return d.withUnsafeBufferPointer { dp in
                s.withUnsafeBufferPointer { sp in
                    dnnl_memory_desc_init_by_strides(&md, Int32(dims.count), dp.baseAddress!, type, sp.baseAddress!) == dnnl_success
                }
            }
        }
    }
}

/// A 64-byte aligned byte buffer that grows to the largest size asked of it.
private struct Buffer {
    private var storage: UnsafeMutableRawPointer?
    private var capacity = 0

    /// At least `bytes` bytes; contents are unspecified after growth.
    mutating func reserve(bytes: Int) -> UnsafeMutableRawPointer {
        if let storage, bytes <= capacity { return storage }
        storage?.deallocate()
        capacity = max(bytes, capacity * 2, 64)
        storage = .allocate(byteCount: capacity, alignment: 64)
        return storage!
    }
}

/// The OpenMP runtime under oneDNN, reached through the symbols its library already loaded
/// (the package links `dnnl`, not `gomp`).
enum OpenMP {
    private typealias SetThreads = @convention(c) (Int32) -> Void
    private typealias GetThreads = @convention(c) () -> Int32
    private static let setter = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_set_num_threads")
        .map { unsafeBitCast($0, to: SetThreads.self) }
    private static let getter = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_get_max_threads")
        .map { unsafeBitCast($0, to: GetThreads.self) }

    /// Threads an OpenMP region started on the calling thread would use.
    static var maxThreads: Int { getter.map { Int($0()) } ?? 1 }

    /// Makes oneDNN calls from this thread run on it alone (a per-thread OpenMP setting).
    static func limitCallingThread() {
        if maxThreads != 1 { setter?(1) }
    }
}
