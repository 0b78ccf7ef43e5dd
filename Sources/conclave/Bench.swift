import ArgumentParser
import Attention
import BenchReport
import Checkpoint
import Foundation
import Kernels
import Model
import Planner
import Sampling

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill and decode speed on one process, each beside what bounds it on this CPU.",
        discussion: """
            Prints the CPU, the f32 FMA and bf16 matmul peaks (1 thread and all threads), then prefill \
            against those peaks and decode against the memory-bandwidth roofline, with bandwidth \
            sampled right before and right after each decode test.
            """)

    @OptionGroup var model: ModelOption
    @OptionGroup var numerics: NumericsOption

    @Option(name: .customLong("prompt-tokens"), help: "Prompt length of the prefill test.")
    var promptTokens = 128

    @Option(name: .customLong("decode-steps"), help: "Decode steps per repetition.")
    var decodeSteps = 32

    @Option(help: "Repetitions of each test (mean ± standard deviation over them).")
    var repetitions = 5

    @Option(name: .customLong("batches"), help: "Decode batch sizes, comma-separated.")
    var batches = "1,8"

    func validate() throws {
        let sizes = try parseIds(batches, option: "--batches")
        guard sizes.allSatisfy({ $0 > 0 }) else { throw ValidationError("--batches takes positive sizes") }
        guard promptTokens >= max(16, sizes.max() ?? 1) else {
            throw ValidationError("--prompt-tokens must be at least 16 and at least the largest batch (decode runs start from its first tokens)")
        }
        guard decodeSteps >= 1, repetitions >= 1 else { throw ValidationError("--decode-steps and --repetitions must be at least 1") }
    }

    func run() throws {
        numerics.apply()
        let pool = ComputePool.shared
        emit("CPU: \(CPUInfo.current().summary)")
        emit("numerics: \(numerics.numerics.rawValue)")
        // Measured before the model loads, on an otherwise idle process; all tests run on `pool`.
        let pools: [ComputePool?] = pool.threads == 1 ? [nil] : [nil, pool]
        let f32 = pools.map { ComputePeak.f32FMA(pool: $0) }
        let bf16 = pools.map { ComputePeak.bf16Matmul(pool: $0) }
        let kernel = bf16.compactMap { $0?.implementation }.first ?? "unavailable"
        let f32Name = "f32 FMA, \(ComputePeak.f32FMACode)"
        let bf16Name = "bf16 matmul, oneDNN bf16 × bf16 → f32 (\(kernel)), 2048³ per thread"
        emit("")
        BenchTable.peaks([(f32Name, f32), (bf16Name, bf16.map { $0?.flopsPerSecond })],
                         threads: pools.map { $0?.threads ?? 1 }).forEach { emit($0) }

        let checkpoint = try Checkpoint(directory: model.url)
        let deepseek = try DeepseekModel(checkpoint: checkpoint)
        var rng = SystemRandomNumberGenerator()
        let prompt = (0..<promptTokens).map { _ in Int.random(in: 2..<deepseek.config.vocabSize, using: &rng) }
        let bandwidth = MemoryBandwidth(pool: pool)
        let parameters = ModelFootprint(config: deepseek.config, weights: .bf16).activeLayerParameters
        var tests: [BenchTest] = []

        let prefillOnce = {
            let cache = deepseek.makeCache(capacity: promptTokens)
            let seconds = try time { _ = try deepseek.forward(tokens: prompt, batch: batch([cache], count: promptTokens), logitRows: [promptTokens - 1]) }
            return Double(promptTokens) / seconds
        }
        _ = try prefillOnce()
        var prefill: [Double] = []
        // Two clock reads per call cost nothing next to a prompt's products.
        let prefillPaths = try KernelProfile.measure { prefill = try (0..<repetitions).map { _ in try prefillOnce() } }
        var pathTests = [pathTest("pp\(promptTokens)", prefillPaths, seconds: prefill.map { Double(promptTokens) / $0 }.reduce(0, +), pool: pool)]
        let threads = pool.threads == 1 ? "1 thread" : "\(pool.threads) threads"
        let peaks = [Bound.peak("f32 FMA peak, \(threads)", flopsPerSecond: f32.last!)]
            + (bf16.last!.map { [Bound.peak("bf16 matmul peak, \(threads)", flopsPerSecond: $0.flopsPerSecond)] } ?? [])
        tests.append(BenchTest(name: "pp\(promptTokens)", tokensPerSecond: prefill, work: Work(.flop, perStep: 2 * Double(parameters)), bounds: peaks))

        for b in try parseIds(batches, option: "--batches") {
            // The first run, not counted, also adds up the weight bytes each step reads: tokens of a
            // batch share experts, so a step reads fewer than b tokens' bytes. Every run decodes
            // the same greedy tokens, so the timed runs read the same.
            // That run's steps are also the ones profiled by kernel path, so the timed runs carry no clock reads.
            var bytes = 0
            let untimed = try decode(deepseek, prompt: prompt, batch: b, profiled: true) {
                bytes += deepseek.weightBytesPerStep(tokens: b) { Set((deepseek.lastRouting(layer: $0) ?? []).joined()).count }
            }
            pathTests.append(pathTest("tg\(decodeSteps) b\(b), untimed run", untimed.paths, seconds: Double(decodeSteps * b) / untimed.tokensPerSecond,
                                      pool: pool))
            let before = bandwidth.sample()
            let rates = try (0..<repetitions).map { _ in try decode(deepseek, prompt: prompt, batch: b).tokensPerSecond }
            let after = bandwidth.sample()
            tests.append(BenchTest(name: "tg\(decodeSteps) b\(b)", tokensPerSecond: rates,
                                   work: Work(.bytes, perStep: Double(bytes) / Double(decodeSteps), tokensPerStep: b),
                                   bounds: Bound.bandwidth(before: before, after: after)))
        }

        emit("")
        BenchTable.tests(tests).forEach { emit($0) }
        emit("")
        emit("All tests on \(threads). Prefill work: 2 FLOP per weight a prompt token multiplies, "
             + String(format: "%.1f M weights ", Double(parameters) / 1e6)
             + "(attention, dense MLPs, and per MoE layer the gate, shared experts and \(deepseek.config.numExpertsPerTok) routed experts; "
             + "not the embedding lookup, attention scores, or the LM head, run for the last token only).")
        emit("Decode work: weight bytes read per step (attention, dense and shared weights, gates, LM head, and every routed expert "
             + "a token of the batch chose); the roofline is bandwidth ÷ that × tokens per step. Bandwidth: median of 3 streaming reads of "
             + "\(bandwidth.bytes >> 30) GiB on \(bandwidth.threads) threads right before and right after each decode test's repetitions; "
             + "decode's \"of bound\" is against the roofline at the mean of the two.")
        emit("")
        BenchTable.paths(pathTests, threadPeak: f32.first!).forEach { emit($0) }
        emit("")
        emit("Matrix products by kernel path (docs/PERFORMANCE.md): prefill over its timed repetitions, decode over each test's "
             + "untimed first run (the one that also counts its bytes; its steps, not the prompts they start from). "
             + "\"Of the threads' time\": thread-seconds inside the path's calls over wall time × \(pool.threads); what the rows "
             + "leave is spent outside the products (norms, routing, attention scores, waits). Per-thread rates are while inside the path.")
    }

    /// The profile of runs that took `seconds` of wall time, as `BenchTable.paths` prints it.
    private func pathTest(_ name: String, _ paths: [KernelPath: KernelProfile.Totals], seconds: Double, pool: ComputePool) -> PathTest {
        PathTest(name: name, threadSeconds: seconds * Double(pool.threads), paths: KernelPath.allCases.compactMap { path in
            paths[path].map { .init(path: path.label, calls: $0.calls, seconds: $0.seconds, flops: $0.flops, weightBytes: $0.weightBytes) }
        })
    }

    /// Tokens per second of `decodeSteps` greedy steps of `b` sequences that each start from
    /// the prompt's first 16 tokens; `afterStep` runs after each step, inside the timing.
    /// `profiled`: the steps run under `KernelProfile.measure`, and `paths` is what it found.
    private func decode(_ model: DeepseekModel, prompt: [Int], batch b: Int, profiled: Bool = false,
                        afterStep: () -> Void = {}) throws -> (tokensPerSecond: Double, paths: [KernelPath: KernelProfile.Totals]) {
        let vocab = model.config.vocabSize
        let caches = (0..<b).map { _ in model.makeCache(capacity: 16 + decodeSteps) }
        for cache in caches {
            _ = try model.forward(tokens: Array(prompt.prefix(16)), batch: batch([cache], count: 16), logitRows: [15])
        }
        var next = Array(prompt.prefix(b))
        var greedy = try Sampler(.greedy)
        func steps() throws {
            for _ in 0..<decodeSteps {
                let logits = try model.forward(tokens: next, batch: batch(caches, count: 1), logitRows: Array(0..<b))
                next = logits.withUnsafeBufferPointer { all in
                    (0..<b).map { i in greedy.sample(logits: UnsafeBufferPointer(rebasing: all[i * vocab ..< (i + 1) * vocab])) }
                }
                afterStep()
            }
        }
        var seconds = 0.0, paths: [KernelPath: KernelProfile.Totals] = [:]
        if profiled { paths = try KernelProfile.measure { seconds = try time(steps) } } else { seconds = try time(steps) }
        return (Double(decodeSteps * b) / seconds, paths)
    }

    private func batch(_ caches: [LatentCache], count: Int) -> AttentionBatch {
        AttentionBatch(slices: caches.enumerated().map { .init(cache: $1, first: $0 * count, count: count) })
    }

    private func time(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
