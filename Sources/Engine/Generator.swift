import Foundation
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
    case promptTooLong(request: Int, tokens: Int, contextLength: Int)

    public var description: String {
        switch self {
        case .emptyPrompt(let r): "request \(r) has an empty prompt"
        case .tokenOutOfRange(let t, let v): "token id \(t) is outside the vocabulary (0..<\(v))"
        case .promptTooLong(let r, let n, let c): "request \(r) has a \(n)-token prompt; the model's context is \(c) positions"
        }
    }
}

/// Runs requests to completion on a `StepExecutor`, batching every live sequence into
/// each step: a sequence's first step carries its whole prompt (prefill), later steps its
/// last token (decode), so prefill and decode share one forward pass. Stop conditions and
/// streamed text are decided here, so a cluster's router runs this same loop.
public final class Generator {
    public let executor: any StepExecutor
    public let tokenizer: Tokenizer?
    public private(set) var stats = GenerationStats()

    public init(executor: any StepExecutor, tokenizer: Tokenizer?) {
        self.executor = executor
        self.tokenizer = tokenizer
    }

    /// Generates for every request; `onText(request, text)` streams decoded text as it
    /// becomes final (needs a tokenizer).
    public func run(_ requests: [GenerationRequest], onText: (Int, String) -> Void = { _, _ in }) throws -> [GenerationResult] {
        for (i, r) in requests.enumerated() {
            guard !r.prompt.isEmpty else { throw GenerationError.emptyPrompt(request: i) }
            if let bad = r.prompt.first(where: { $0 < 0 || $0 >= executor.vocabSize }) {
                throw GenerationError.tokenOutOfRange(token: bad, vocabSize: executor.vocabSize)
            }
            guard r.prompt.count < executor.contextLength else {
                throw GenerationError.promptTooLong(request: i, tokens: r.prompt.count, contextLength: executor.contextLength)
            }
        }
        // A sequence stops for length when the model's context is full.
        var live = try requests.enumerated().map { i, r in
            var fitted = r
            fitted.maxTokens = min(r.maxTokens, executor.contextLength - r.prompt.count)
            return try LiveSequence(index: i, request: fitted, tokenizer: tokenizer)
        }
        var results = [GenerationResult](repeating: GenerationResult(), count: requests.count)
        live.removeAll { s in
            guard s.request.maxTokens <= 0 else { return false }
            results[s.index] = s.result
            return true
        }
        stats = GenerationStats()
        var finished: [UInt64] = []
        var step: UInt64 = 0
        while !live.isEmpty {
            let plan = StepPlan(step: step, work: live.map(\.nextWork), finished: finished)
            let start = DispatchTime.now().uptimeNanoseconds
            let output = try executor.execute(plan)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            stats.record(plan: plan, seconds: seconds)
            for s in live {
                guard let next = output.tokens[s.sequence] else { throw ExecutionError.unknownSequence(s.sequence, step: step) }
                if let text = try s.accept(next) { onText(s.index, text) }
            }
            finished = []
            live.removeAll { s in
                guard s.isFinished else { return false }
                if let tail = s.flush() { onText(s.index, tail) }
                results[s.index] = s.result
                finished.append(s.sequence)
                return true
            }
            step += 1
        }
        if !finished.isEmpty { _ = try executor.execute(StepPlan(step: step, work: [], finished: finished)) }
        return results
    }
}

/// Time spent in forward passes, split into prefill and decode steps.
public struct GenerationStats: Sendable {
    public var prefillTokens = 0, prefillSeconds = 0.0
    public var decodeTokens = 0, decodeSeconds = 0.0

    mutating func record(plan: StepPlan, seconds: Double) {
        let prefill = plan.work.filter { $0.joining != nil }.reduce(0) { $0 + $1.tokens.count }
        if prefill > 0 {
            prefillTokens += prefill
            prefillSeconds += seconds
        } else {
            decodeTokens += plan.tokenCount
            decodeSeconds += seconds
        }
    }
}
