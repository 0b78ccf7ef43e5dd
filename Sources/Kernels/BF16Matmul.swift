import COneDNN
import Foundation

/// `y = x · Wᵀ` for a bf16 weight and many tokens (prefill), on oneDNN's bf16 matmul.
///
/// The weight is read in place: its row-major `[N × K]` storage is described to oneDNN as
/// the `[K × N]` weights with strides `{1, K}`. Activations are rounded to bf16 into a
/// reused buffer (oneDNN 2.6 has no f32 × bf16 matmul).
public enum BF16Matmul {
    public enum Strategy: Sendable { case splitN, splitNStaged, splitM, openMP }
    nonisolated(unsafe) public static var strategy: Strategy = .splitN

    /// `y[t, r] = Σ_c W[r, c] · x[t, c]` for `t < tokens`, as `Linear.apply`. Returns false,
    /// having written nothing, when `w` is not bf16 or oneDNN cannot run the product, so the
    /// caller falls back to another kernel.
    public static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                tokens: Int, ldx: Int? = nil, ldy: Int? = nil, pool: ComputePool = .shared) -> Bool {
        guard case .bf16(let wp) = w.storage else { return false }
        let ldx = ldx ?? w.cols, ldy = ldy ?? w.rows
        guard tokens > 0, w.rows > 0, w.cols > 0 else { return true }
        guard let backend = OneDNN.shared else { return false }
        return backend.multiply(wp, rows: w.rows, cols: w.cols, x, ldx: ldx, y, ldy: ldy, tokens: tokens, pool: pool)
    }

    /// Rounds `rows` rows of `x` (row stride `ldx`) to bf16, packed `[rows × cols]` into `out`.
    public static func narrow(_ x: UnsafePointer<Float>, ldx: Int, rows: Range<Int>, cols: Int, into out: UnsafeMutablePointer<UInt16>) {
        let vec = cols & ~7
        for r in rows {
            let src = UnsafeRawPointer(x + r * ldx), dst = UnsafeMutableRawPointer(out + r * cols)
            var c = 0
            while c < vec {
                // Eight lanes, not sixteen: SIMD16 masks and selects compile to scalar code here.
                let bits = src.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<UInt32>.self)
                let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
                // All ones in lanes holding a NaN (magnitude above infinity's): those keep their
                // top half with the quiet bit set, as `BF16.fromFloat`.
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

/// The process's oneDNN engine and the matmul plans it has built, one per product shape.
final class OneDNN: @unchecked Sendable {
    /// nil when oneDNN cannot create a CPU engine.
    static let shared = OneDNN()

    private let engine: dnnl_engine_t
    private let lock = NSLock()
    private var plans: [Plan.Key: Plan?] = [:]
    private var source: UnsafeMutablePointer<UInt16>
    private var sourceCapacity = 0
    /// One stream and one scratchpad per pool part: parts execute concurrently.
    private var streams: [dnnl_stream_t] = []
    private var scratchpads: [UnsafeMutableRawPointer] = []
    private var scratchpadCapacity: [Int] = []

    private init?() {
        var engine: dnnl_engine_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        self.engine = engine
        source = .allocate(capacity: 1)
    }

    func multiply(_ w: UnsafePointer<UInt16>, rows: Int, cols: Int, _ x: UnsafePointer<Float>, ldx: Int,
                  _ y: UnsafeMutablePointer<Float>, ldy: Int, tokens: Int, pool: ComputePool) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let strategy = BF16Matmul.strategy
        OpenMP.setThreads(strategy == .openMP ? pool.threads : 1)
        let parts = strategy == .splitN || strategy == .splitNStaged ? min(pool.threads, max(1, rows / 64)) : strategy == .splitM ? min(pool.threads, max(1, tokens / 16)) : 1
        let key = Plan.Key(tokens: tokens, rows: rows, cols: cols, ldy: ldy, parts: parts, strategy: strategy)
        let plan: Plan
        if let cached = plans[key] {
            guard let cached else { return false }
            plan = cached
        } else {
            let made = Plan(key, engine: engine)
            plans[key] = .some(made)
            guard let made else { return false }
            plan = made
        }
        while streams.count < parts {
            var stream: dnnl_stream_t?
            guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let stream else { return false }
            streams.append(stream)
            scratchpads.append(.allocate(byteCount: 64, alignment: 64))
            scratchpadCapacity.append(64)
        }
        for (i, part) in plan.parts.enumerated() where part.workspaceBytes > scratchpadCapacity[i] {
            scratchpads[i].deallocate()
            scratchpads[i] = .allocate(byteCount: part.workspaceBytes, alignment: 64)
            scratchpadCapacity[i] = part.workspaceBytes
        }
        if tokens * cols > sourceCapacity {
            source.deallocate()
            sourceCapacity = max(tokens * cols, sourceCapacity * 2)
            source = .allocate(capacity: sourceCapacity)
        }
        let src = source
        pool.parallelFor(tokens, grain: 4) { BF16Matmul.narrow(x, ldx: ldx, rows: $0, cols: cols, into: src) }
        let (streams, scratchpads) = (self.streams, self.scratchpads)
        var failed = false
        if strategy != .openMP {
            pool.run { p in
                guard p < plan.parts.count else { return }
                OpenMP.setThreads(1)
                if !plan.parts[p].execute(w, src, y, scratchpad: scratchpads[p], stream: streams[p]) { failed = true }
            }
        } else {
            failed = !plan.parts[0].execute(w, src, y, scratchpad: scratchpads[0], stream: streams[0])
        }
        return !failed
    }
}

/// A matmul primitive per column block of the output, with memory objects whose data
/// handles are set per call.
private final class Plan {
    struct Key: Hashable {
        let tokens, rows, cols, ldy, parts: Int
        let strategy: BF16Matmul.Strategy
    }

    final class Part {
        let tokens, columns: Range<Int>
        let cols, ldy: Int
        let primitive: dnnl_primitive_t
        let descriptor: dnnl_primitive_desc_t
        let src, weights, dst, scratchpad: dnnl_memory_t
        let scratchpadBytes: Int
        /// Written through a dense staging block and copied out: oneDNN 2.6's brgemm matmul
        /// takes only dense activations and outputs, and falls back to gemm:jit otherwise.
        let staged: Bool
        var workspaceBytes: Int { (scratchpadBytes + 63) & ~63 + (staged ? tokens.count * columns.count * 4 : 0) }

        init?(tokens: Range<Int>, columns: Range<Int>, key: Key, engine: dnnl_engine_t) {
            self.tokens = tokens
            self.columns = columns
            cols = key.cols
            ldy = key.ldy
            staged = key.strategy == .splitNStaged && columns.count != key.ldy
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
            guard let s = memory(&srcMD), let w = memory(&weightsMD), let d = memory(&dstMD), let sp = memory(scratchMD) else { return nil }
            (src, weights, dst, scratchpad) = (s, w, d, sp)
        }

        deinit {
            for m in [src, weights, dst, scratchpad] { dnnl_memory_destroy(m) }
            dnnl_primitive_destroy(primitive)
            dnnl_primitive_desc_destroy(descriptor)
        }

        var implementation: String {
            var info: UnsafePointer<CChar>?
            dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &info)
            return info.map { String(cString: $0) } ?? "?"
        }

        func execute(_ w: UnsafePointer<UInt16>, _ x: UnsafePointer<UInt16>, _ y: UnsafeMutablePointer<Float>,
                     scratchpad buffer: UnsafeMutableRawPointer, stream: dnnl_stream_t) -> Bool {
            guard dnnl_memory_set_data_handle(src, UnsafeMutableRawPointer(mutating: x + tokens.lowerBound * cols)) == dnnl_success,
                  dnnl_memory_set_data_handle(weights, UnsafeMutableRawPointer(mutating: w + columns.lowerBound * cols)) == dnnl_success,
                  dnnl_memory_set_data_handle(scratchpad, buffer) == dnnl_success else { return false }
            let out = y + tokens.lowerBound * ldy + columns.lowerBound
            let staging = (buffer + (scratchpadBytes + 63) & ~63).assumingMemoryBound(to: Float.self)
            guard dnnl_memory_set_data_handle(dst, staged ? staging : out) == dnnl_success else { return false }
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

        private static func describe(_ md: inout dnnl_memory_desc_t, _ dims: [Int64], _ type: dnnl_data_type_t, strides: [Int64]) -> Bool {
            let d = dims + Array(repeating: 0, count: 12 - dims.count), s = strides + Array(repeating: 0, count: 12 - strides.count)
            return d.withUnsafeBufferPointer { dp in s.withUnsafeBufferPointer { sp in
                    dnnl_memory_desc_init_by_strides(&md, Int32(dims.count), dp.baseAddress!, type, sp.baseAddress!) == dnnl_success
                } }
        }
    }

    let parts: [Part]

    init?(_ key: Key, engine: dnnl_engine_t) {
        var parts: [Part] = []
        for p in 0..<key.parts {
            let t = key.strategy == .splitM ? Self.share(key.tokens, p, of: key.parts, grain: 1) : 0..<key.tokens
            let c = key.strategy == .splitN || key.strategy == .splitNStaged ? Self.share(key.rows, p, of: key.parts, grain: 16) : 0..<key.rows
            guard !t.isEmpty, !c.isEmpty, let part = Part(tokens: t, columns: c, key: key, engine: engine) else { return nil }
            parts.append(part)
        }
        self.parts = parts
    }

    private static func share(_ count: Int, _ p: Int, of parts: Int, grain: Int) -> Range<Int> {
        let units = (count + grain - 1) / grain
        return min(count, units * p / parts * grain)..<min(count, units * (p + 1) / parts * grain)
    }
}

/// The OpenMP runtime under oneDNN, reached through the symbols its library already loaded.
enum OpenMP {
    private typealias SetThreads = @convention(c) (Int32) -> Void
    private typealias GetThreads = @convention(c) () -> Int32
    nonisolated(unsafe) private static let setter: SetThreads? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_set_num_threads")
        .map { unsafeBitCast($0, to: SetThreads.self) }
    nonisolated(unsafe) private static let getter: GetThreads? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_get_max_threads")
        .map { unsafeBitCast($0, to: GetThreads.self) }

    /// OpenMP threads a parallel region started on the calling thread would use.
    static var maxThreads: Int { getter.map { Int($0()) } ?? 1 }

    /// Limits parallel regions started on the calling thread (an OpenMP per-thread setting).
    static func setThreads(_ n: Int) { setter?(Int32(n)) }
}
