import ArgumentParser
import Attention
import Checkpoint
import Foundation
import Kernels
import Logging
import Model
import Sampling

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure memory bandwidth, prefill and decode speed on one process, and decode against its bandwidth roofline.")

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
        let checkpoint = try Checkpoint(directory: model.url)
        let deepseek = try DeepseekModel(checkpoint: checkpoint)
        let vocab = deepseek.config.vocabSize
        var rng = SystemRandomNumberGenerator()
        let prompt = (0..<promptTokens).map { _ in Int.random(in: 2..<vocab, using: &rng) }

        let bandwidth = MemoryBandwidth.measure()
        let active = deepseek.activeWeightBytesPerToken
        let roofline = bandwidth / Double(active)
        var rows: [(String, [Double])] = []

        rows.append(("pp\(promptTokens)", try (0...repetitions).map { _ in
            let cache = deepseek.makeCache(capacity: promptTokens)
            let seconds = try time { _ = try deepseek.forward(tokens: prompt, batch: batch([cache], count: promptTokens), logitRows: [promptTokens - 1]) }
            return Double(promptTokens) / seconds
        }.dropFirst().map { $0 }))

        for b in try parseIds(batches, option: "--batches") {
            rows.append(("tg\(decodeSteps) b\(b)", try (0...repetitions).map { _ in
                let caches = (0..<b).map { _ in deepseek.makeCache(capacity: 16 + decodeSteps) }
                for cache in caches {
                    _ = try deepseek.forward(tokens: Array(prompt.prefix(16)), batch: batch([cache], count: 16), logitRows: [15])
                }
                var next = Array(prompt.prefix(b))
                var greedy = try Sampler(.greedy)
                let seconds = try time {
                    for _ in 0..<decodeSteps {
                        let logits = try deepseek.forward(tokens: next, batch: batch(caches, count: 1), logitRows: Array(0..<b))
                        next = logits.withUnsafeBufferPointer { all in
                            (0..<b).map { i in greedy.sample(logits: UnsafeBufferPointer(rebasing: all[i * vocab ..< (i + 1) * vocab])) }
                        }
                    }
                }
                return Double(decodeSteps * b) / seconds
            }.dropFirst().map { $0 }))
        }

        let line = String(format: "threads %d, streaming read bandwidth %.1f GB/s, active weights %.1f MB/token, roofline %.1f tokens/s",
                    ComputePool.shared.threads, bandwidth / 1e9, Double(active) / 1e6, roofline)
        log.info("\(line)")
        emit("| test | tokens/s | ± | of roofline |")
        emit("|---|---:|---:|---:|")
        for (name, samples) in rows {
            let mean = samples.reduce(0, +) / Double(samples.count)
            let std = (samples.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(max(samples.count - 1, 1))).squareRoot()
            let fraction = name.hasSuffix(" b1") ? String(format: "%.0f%%", 100 * mean / roofline) : ""
            emit(String(format: "| %@ | %.1f | %.1f | %@ |", name, mean, std, fraction))
        }
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
