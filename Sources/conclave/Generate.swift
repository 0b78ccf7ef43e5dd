import ArgumentParser
import Checkpoint
import Engine
import Foundation
import Logging
import Tokenizer

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a prompt, streaming it as it is produced.")

    @OptionGroup var model: ModelOption
    @OptionGroup var numerics: NumericsOption

    @Option(help: "Prompt text.")
    var prompt: String?

    @Option(help: "Prompt as comma-separated token ids, instead of --prompt.")
    var tokens: String?

    @Option(name: .customLong("prompts-file"), help: "A file with one prompt per line; all are generated together in one batch.")
    var promptsFile: String?

    @Flag(help: "Wrap the prompt in the model's chat format (a user turn followed by the assistant's).")
    var chat = false

    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate per prompt.")
    var maxTokens = 64

    @OptionGroup var sampling: SamplingOptions

    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past the end-of-sequence token.")
    var ignoreEOS = false

    @Option(name: .customLong("stop"), help: "Stop when this text is produced (repeatable).")
    var stops: [String] = []

    @Flag(help: "Print one JSON object per prompt (token ids and text) instead of streaming text.")
    var json = false

    @OptionGroup var cluster: ClusterArguments
    @OptionGroup var expertLoad: ExpertLoadOption

    func validate() throws {
        let sources = [prompt != nil, tokens != nil, promptsFile != nil].filter { $0 }.count
        guard sources == 1 else { throw ValidationError("give exactly one of --prompt, --tokens or --prompts-file") }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be ≥ 0") }
    }

    func run() throws {
        numerics.apply()
        try Executor.run(model: model.url, cluster: cluster) { executor in
            let recorder = try expertLoad.recordExpertLoad.map {
                try ExpertLoadRecorder(file: URL(fileURLWithPath: $0), model: model.url, executor: executor)
            }
            // Token-id prompts run without a tokenizer (some checkpoints ship none).
            let tokenizer = tokens != nil && !FileManager.default.fileExists(atPath: model.url.appendingPathComponent("tokenizer.json").path)
                ? nil : try Tokenizer(directory: model.url)
            let config = try ModelConfig(contentsOf: model.url.appendingPathComponent(Checkpoint.configFile))
            let stopIds = ignoreEOS ? [] : Set(config.eosTokenIds)
            let requests = try promptIds(tokenizer: tokenizer).map {
                GenerationRequest(prompt: $0, maxTokens: maxTokens, sampling: sampling.parameters, stopTokenIds: stopIds, stopStrings: stops)
            }
            let generator = Generator(executor: executor.stepExecutor, tokenizer: tokenizer)
            let stream = !json && requests.count == 1
            let results = try generator.run(requests) { _, text in if stream { emit(text, newline: false) } }
            if json {
                for (r, result) in zip(requests, results) {
                    emit(try jsonText(["prompt": r.prompt, "tokens": result.tokens, "text": result.text,
                                       "finish_reason": result.finishReason.rawValue]))
                }
            } else if stream {
                emit("")
            } else {
                for result in results { emit(result.text) }
            }
            let s = generator.stats
            let line = String(format: "prefill %d tokens in %.3f s (%.1f tok/s); decode %d tokens in %.3f s (%.1f tok/s)",
                        s.prefillTokens, s.prefillSeconds, Double(s.prefillTokens) / max(s.prefillSeconds, 1e-9),
                        s.decodeTokens, s.decodeSeconds, Double(s.decodeTokens) / max(s.decodeSeconds, 1e-9))
            log.info("\(line)")
            try recorder?.write()
        }
    }

    private func promptIds(tokenizer: Tokenizer?) throws -> [[Int]] {
        if let tokens { return [try parseIds(tokens, option: "--tokens")] }
        guard let tokenizer else { throw ValidationError("text prompts need the model's tokenizer.json") }
        let texts: [String]
        if let promptsFile {
            texts = try String(contentsOfFile: promptsFile, encoding: .utf8).split(separator: "\n").map(String.init)
            guard !texts.isEmpty else { throw ValidationError("--prompts-file \(promptsFile) has no prompts") }
        } else {
            texts = [prompt!]
        }
        return texts.map { text in
            chat ? tokenizer.encode(ChatTemplate.deepseek.render([ChatMessage(role: .user, content: text)], addGenerationPrompt: true), addBOS: false)
                 : tokenizer.encode(text, addBOS: true)
        }
    }
}
