import ArgumentParser
import Checkpoint
import Foundation
import Logging
import Presets

struct InitModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init-model",
        abstract: "Write a deterministic synthetic checkpoint in the real Hugging Face layout (bf16 or f32 safetensors, config, tokenizer).")

    @Option(help: "Which model: \(ModelPreset.allCases.map(\.rawValue).joined(separator: ", ")). tiny is the demo's default; bench-mid is the benchmark model; bench-mid-skewed is bench-mid with skewed routing (a Zipf-like correction bias over a different hot set of experts in each MoE layer: the 8 hottest of 64 take about half the tokens), for expert-balance work.")
    var preset: ModelPreset

    @Option(help: "Directory to write the model into (created if missing).")
    var out: String

    @Option(help: "Seed of the random weights: the same seed writes the same bytes.")
    var seed: UInt64 = 0

    @Option(help: "Weight storage: bf16, or f32 holding the same (bf16-exact) values.")
    var dtype: WeightStorage = .bf16

    enum WeightStorage: String, ExpressibleByArgument, CaseIterable {
        case bf16, f32
    }

    func run() throws {
        let start = Date()
        try SyntheticCheckpoint.write(preset: preset, to: URL(fileURLWithPath: out), seed: seed, weights: dtype == .f32 ? .f32 : .bf16)
        let line = String(format: "wrote %@ model to %@ in %.1f s", preset.rawValue, out, Date().timeIntervalSince(start))
        log.info("\(line)")
    }
}

extension ModelPreset: ExpressibleByArgument {}
