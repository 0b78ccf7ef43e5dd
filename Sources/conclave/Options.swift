import ArgumentParser
import Foundation
import Logging
import Kernels
import Sampling

struct ModelOption: ParsableArguments {
    @Option(name: .long, help: "Model directory: config.json, model.safetensors (or shards with model.safetensors.index.json), tokenizer.json.")
    var model: String

    var url: URL { URL(fileURLWithPath: model) }
}

/// `--numerics`: how products round, for every command that runs the model.
struct NumericsOption: ParsableArguments {
    @Option(help: "exact (default): f32 activations, results independent of batch, chunking, layout and threads; fast: bf16-rounded activations on oneDNN for prefill (docs/PERFORMANCE.md).")
    var numerics: Numerics = .exact

    /// Sets the process's numerics; before the model runs.
    func apply() { Numerics.mode = numerics }
}

extension Numerics: ExpressibleByArgument {}

struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling temperature; 0 picks the most likely token (greedy).")
    var temperature: Float = 0

    @Option(name: .customLong("top-k"), help: "Sample only among the k most likely tokens (0 = no limit).")
    var topK: Int = 0

    @Option(name: .customLong("top-p"), help: "Sample only among the most likely tokens whose probabilities sum to p (1 = no limit).")
    var topP: Float = 1

    @Option(help: "Seed of the sampler's random numbers, for reproducible sampling.")
    var seed: UInt64 = 0

    var parameters: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed)
    }
}

/// Parses `1,2,3` into token ids.
func parseIds(_ text: String, option: String) throws -> [Int] {
    try text.split(separator: ",").map { part in
        guard let id = Int(part.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("\(option): '\(part)' is not a token id (expected comma-separated integers like 1,2,3)")
        }
        return id
    }
}

/// JSON text of a value made of dictionaries, arrays, strings and numbers, keys sorted.
func jsonText(_ object: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
}

/// Writes to standard output and flushes: under mpirun stdout is a block-buffered pipe.
func emit(_ text: String, newline: Bool = true) {
    FileHandle.standardOutput.write(Data((newline ? text + "\n" : text).utf8))
}

/// Tables and profiles go to standard error as they are, keeping standard output for results.
func report(_ text: String) {
    FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
}

/// Log lines go to standard error; under mpirun they carry the rank and role.
nonisolated(unsafe) var log = Logger(label: "conclave") { StreamLogHandler.standardError(label: $0) }
