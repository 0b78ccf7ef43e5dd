import Attention
import Foundation
import Model
import Sampling
import Tokenizer

/// What one sequence asks for.
public struct GenerationRequest: Sendable {
    public var prompt: [Int]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Token ids that end the sequence (the model's EOS unless `ignoreEOS`).
    public var stopTokenIds: Set<Int>
    /// Texts that end the sequence; the text stops before them.
    public var stopStrings: [String]

    public init(prompt: [Int], maxTokens: Int, sampling: SamplingParameters, stopTokenIds: Set<Int> = [], stopStrings: [String] = []) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokenIds = stopTokenIds
        self.stopStrings = stopStrings
    }
}

public enum FinishReason: String, Sendable, Codable {
    case stopToken = "stop_token", stopString = "stop_string", length
}

public struct GenerationResult: Sendable {
    public var tokens: [Int] = []
    public var text = ""
    public var finishReason = FinishReason.length
}

public enum GenerationError: Error, CustomStringConvertible {
    case emptyPrompt(request: Int)
    case tokenOutOfRange(token: Int, vocabSize: Int)

    public var description: String {
        switch self {
        case .emptyPrompt(let r): "request \(r) has an empty prompt"
        case .tokenOutOfRange(let t, let v): "token id \(t) is outside the vocabulary (0..<\(v))"
        }
    }
}

/// Runs requests to completion on a `StepModel`, batching every live sequence into each
/// step: a sequence's first step carries its whole prompt (prefill), later steps its last
/// token (decode), so prefill and decode share one forward pass.
public final class Generator {
    public let model: any StepModel
    public let tokenizer: Tokenizer?
    public private(set) var stats = GenerationStats()

    public init(model: any StepModel, tokenizer: Tokenizer?) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Generates for every request; `onText(request, text)` streams decoded text as it
    /// becomes final (needs a tokenizer).
    public func run(_ requests: [GenerationRequest], onText: (Int, String) -> Void = { _, _ in }) throws -> [GenerationResult] {
        for (i, r) in requests.enumerated() {
            guard !r.prompt.isEmpty else { throw GenerationError.emptyPrompt(request: i) }
            if let bad = r.prompt.first(where: { $0 < 0 || $0 >= model.vocabSize }) {
                throw GenerationError.tokenOutOfRange(token: bad, vocabSize: model.vocabSize)
            }
        }
        var live = try requests.enumerated().map { i, r in
            try LiveSequence(index: i, request: r, cache: model.makeCache(capacity: r.prompt.count + r.maxTokens),
                             tokenizer: tokenizer)
        }
        var results = [GenerationResult](repeating: GenerationResult(), count: requests.count)
        live.removeAll { s in
            guard s.request.maxTokens <= 0 else { return false }
            results[s.index] = s.result
            return true
        }
        stats = GenerationStats()
        while !live.isEmpty {
            var tokens: [Int] = []
            var slices: [AttentionBatch.Slice] = []
            var lastRows: [Int] = []
            var prefillTokens = 0
            for s in live {
                let step = s.result.tokens.isEmpty ? s.request.prompt : [s.result.tokens.last!]
                if s.result.tokens.isEmpty { prefillTokens += step.count }
                slices.append(.init(cache: s.cache, first: tokens.count, count: step.count))
                tokens += step
                lastRows.append(tokens.count - 1)
            }
            let start = DispatchTime.now().uptimeNanoseconds
            let logits = model.forward(tokens: tokens, batch: AttentionBatch(slices: slices), logitRows: lastRows)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            stats.record(tokens: tokens.count, prefillTokens: prefillTokens, seconds: seconds)
            let vocab = model.vocabSize
            for (i, s) in live.enumerated() {
                let next = logits.withUnsafeBufferPointer {
                    s.sample(UnsafeBufferPointer(rebasing: $0[i * vocab ..< (i + 1) * vocab]))
                }
                if let text = try s.accept(next) { onText(s.index, text) }
            }
            live.removeAll { s in
                guard s.isFinished else { return false }
                if let tail = s.flush() { onText(s.index, tail) }
                results[s.index] = s.result
                return true
            }
        }
        return results
    }
}

/// Time spent in forward passes, split into prefill and decode steps.
public struct GenerationStats: Sendable {
    public var prefillTokens = 0, prefillSeconds = 0.0
    public var decodeTokens = 0, decodeSeconds = 0.0, decodeSteps = 0

    mutating func record(tokens: Int, prefillTokens: Int, seconds: Double) {
        if prefillTokens > 0 {
            self.prefillTokens += prefillTokens
            prefillSeconds += seconds
        } else {
            decodeTokens += tokens
            decodeSeconds += seconds
            decodeSteps += 1
        }
    }
}
