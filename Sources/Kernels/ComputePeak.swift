internal import COneDNN
internal import ExactRowsAVX512
import Foundation

/// The compute peaks prefill is bounded by, measured on this machine: what the exact
/// kernels' code (AVX-512 intrinsics, or Swift SIMD code compiled for AVX2 and FMA) can reach in f32, and
/// what oneDNN's bf16 matmul, which prefill's products run on, reaches on a compute-bound shape.
///
/// Each is measured on the calling thread alone (`pool` nil) or on every thread of `pool`,
/// each thread doing the whole work on its own data, and is the best of a few runs after a
/// warm-up: a peak is what the machine can do, not what it did at one moment.
public enum ComputePeak {
    /// f32 FLOP per second of fused multiply-adds on register-resident 16-lane vectors, in
    /// the code the exact kernels run (`f32FMACode`).
    public static func f32FMA(pool: ComputePool?, iterations: Int = 1 << 25) -> Double {
        let sums = UnsafeMutableBufferPointer<Float>.allocate(capacity: pool?.threads ?? 1)
        defer { sums.deallocate() }
        let avx512 = ExactKernel.chosen == .avx512
        let seconds = fastest {
            onEachThread(pool) { part in
                sums[part] = avx512 ? exact_avx512_fma_chains(iterations, Float(part + 1)) : fmaChains(iterations, seed: Float(part + 1))
            }
        }
        precondition(sums.allSatisfy(\.isFinite))
        return Double(sums.count * iterations * (avx512 ? Int(EXACT_AVX512_FMA_CHAINS) : fmaChainCount) * 16 * 2) / seconds
    }

    /// The code `f32FMA` measures and the exact kernels run.
    public static var f32FMACode: String {
        ExactKernel.chosen == .avx512 ? "C with AVX-512 intrinsics" : "Swift SIMD16<Float> with -target-cpu haswell"
    }

    /// oneDNN's bf16 × bf16 → f32 matmul of `size`³ (2 · size³ FLOP) per thread.
    public struct Matmul: Sendable {
        public let flopsPerSecond: Double
        /// oneDNN's name for the kernel it picked (`brg:avx512_core_bf16`, `brg:avx512_core_amx`, `gemm:jit`, …).
        public let implementation: String
    }

    /// nil when oneDNN cannot create an engine or the product.
    public static func bf16Matmul(size: Int = 2048, pool: ComputePool?) -> Matmul? {
        var engine: dnnl_engine_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        defer { dnnl_engine_destroy(engine) }
        // Built for, and run with, one OpenMP thread (`OpenMP.limitCallingThread`): oneDNN's own
        // threads would compete with the pool's and keep spinning after the measurement.
        OpenMP.limitCallingThread()
        let threads = pool?.threads ?? 1
        let products = (0..<threads).compactMap { _ in SquareMatmul(size: size, engine: engine) }
        guard products.count == threads else { return nil }
        let ok = UnsafeMutableBufferPointer<Bool>.allocate(capacity: products.count)
        defer { ok.deallocate() }
        ok.initialize(repeating: true)
        let seconds = fastest {
            onEachThread(pool) { part in
                OpenMP.limitCallingThread()
                ok[part] = ok[part] && products[part].run()
            }
        }
        guard ok.allSatisfy({ $0 }) else { return nil }
        return Matmul(flopsPerSecond: Double(products.count) * 2 * pow(Double(size), 3) / seconds,
                      implementation: products[0].implementation)
    }

    /// Seconds of the fastest of `runs` calls of `body`, after one untimed call.
    private static func fastest(runs: Int = 3, _ body: () -> Void) -> Double {
        body()
        return (0..<runs).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }.min()!
    }

    private static func onEachThread(_ pool: ComputePool?, _ body: (Int) -> Void) {
        if let pool { pool.run(body) } else { body(0) }
    }

    /// Six independent chains: with `-target-cpu haswell` a `SIMD16<Float>` is two 256-bit
    /// registers, so 12 FMAs are in flight, more than the 8 (4 cycles of latency × 2 FMA units)
    /// that keep current x86 cores busy, while chains and operands still fit AVX2's 16 vector
    /// registers (8 chains spilled to the stack and ran at 60 % of 6's).
    private static let fmaChainCount = 6

    @inline(never)
    private static func fmaChains(_ iterations: Int, seed: Float) -> Float {
        // x ← x · m + c converges (to c / (1 - m)), so no value overflows or turns subnormal;
        // distinct lanes keep the compiler from folding the halves of a vector together.
        let m = SIMD16<Float>(repeating: 0.999_999), c = SIMD16<Float>(repeating: seed * 1e-6)
        let lanes = SIMD16<Float>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) + seed
        var a0 = lanes, a1 = lanes + 16, a2 = lanes + 32, a3 = lanes + 48, a4 = lanes + 64, a5 = lanes + 80
        for _ in 0..<iterations {
            a0 = c.addingProduct(a0, m)
            a1 = c.addingProduct(a1, m)
            a2 = c.addingProduct(a2, m)
            a3 = c.addingProduct(a3, m)
            a4 = c.addingProduct(a4, m)
            a5 = c.addingProduct(a5, m)
        }
        return ((a0 + a1) + (a2 + a3) + (a4 + a5)).sum()
    }
}

/// One thread's `[size × size]` bf16 activations times a `[size × size]` bf16 weight stored
/// `[N × K]` row-major, as the model's weights are, into f32: one part of `BF16Matmul`'s plans
/// covering every column, with its own operands, stream and workspace.
private final class SquareMatmul {
    private let part: Plan.Part
    private let stream: dnnl_stream_t
    private let weights, activations, output, workspace: UnsafeMutableRawPointer

    init?(size: Int, engine: dnnl_engine_t) {
        let key = Plan.Key(tokens: size, rows: size, cols: size, ldy: size, parts: 1, splitTokens: false)
        var stream: dnnl_stream_t?
        guard let part = Plan.Part(tokens: 0..<size, columns: 0..<size, key: key, engine: engine),
              dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let stream else { return nil }
        (self.part, self.stream) = (part, stream)
        weights = .allocate(byteCount: size * size * 2, alignment: 64)
        activations = .allocate(byteCount: size * size * 2, alignment: 64)
        output = .allocate(byteCount: size * size * 4, alignment: 64)
        workspace = .allocate(byteCount: part.workspaceBytes, alignment: 64)
        // bf16 1.0 in both operands: values do not change the speed of the dot products.
        for b in [weights, activations] { b.initializeMemory(as: UInt16.self, repeating: 0x3F80, count: size * size) }
    }

    deinit {
        for b in [weights, activations, output, workspace] { b.deallocate() }
        dnnl_stream_destroy(stream)
    }

    var implementation: String { part.implementation }

    func run() -> Bool {
        part.execute(weights.assumingMemoryBound(to: UInt16.self), activations.assumingMemoryBound(to: UInt16.self),
                     output.assumingMemoryBound(to: Float.self), workspace: workspace, stream: stream)
    }
}
