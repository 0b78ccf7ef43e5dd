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
    /// Report each token's log-probability and this many top alternatives; nil: none.
    public var logprobs: Int?

    public init(prompt: [Int], maxTokens: Int, sampling: SamplingParameters, stopTokenIds: Set<Int> = [], stopStrings: [String] = [],
                logprobs: Int? = nil) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokenIds = stopTokenIds
        self.stopStrings = stopStrings
        self.logprobs = logprobs
    }
}

public enum FinishReason: String, Sendable, Codable {
    case stopToken = "stop_token", stopString = "stop_string", length
    /// Cancelled by its client, or cut when the server drained.
    case cancelled
}

public struct GenerationResult: Sendable {
    public var tokens: [Int] = []
    public var text = ""
    public var finishReason = FinishReason.length
    /// Tokens the model produced, the stop token included.
    public var generated = 0
}

/// What one step did for one sequence.
public struct GenerationUpdate: Sendable {
    public var id: UInt64
    /// The token it produced, if it is part of the output (a stop token is not).
    public var token: Int?
    public var logprobs: TokenLogprobs?
    /// Text that became final (stop strings and partial characters are held back).
    public var text = ""
    /// Set on the sequence's last update.
    public var finished: GenerationResult?
}

public enum GenerationError: Error, CustomStringConvertible {
    case emptyPrompt(request: Int)
    case tokenOutOfRange(token: Int, vocabSize: Int)
    case promptTooLong(request: Int, tokens: Int, contextLength: Int)
    case exceedsCacheCapacity(request: Int, positions: Int, capacity: Int)
    case duplicateId(UInt64)

    public var description: String {
        switch self {
        case .emptyPrompt(let r): "request \(r) has an empty prompt"
        case .tokenOutOfRange(let t, let v): "token id \(t) is outside the vocabulary (0..<\(v))"
        case .promptTooLong(let r, let n, let c): "request \(r) has a \(n)-token prompt; the model's context is \(c) positions"
        case .exceedsCacheCapacity(let r, let n, let c):
            "request \(r) needs \(n) cache positions (prompt + max tokens); an attention rank holds \(c)"
        case .duplicateId(let id): "request id \(id) is already in use"
        }
    }
}

/// The engine loop: every step, the scheduler admits waiting requests and plans decode
/// tokens and prompt chunks, the executor runs them as one forward pass, and each
/// sequence takes its sampled token, checks its stop conditions and releases its text.
/// Requests may be submitted and cancelled between any two steps (continuous batching);
/// `run` is the same loop over a fixed list. A cluster's router drives this same loop.
public final class Generator {
    public let executor: any StepExecutor
    public let tokenizer: Tokenizer?
    public private(set) var stats = GenerationStats()
    /// The most recent forward pass.
    public private(set) var lastStep: StepRecord?
    private let scheduler: Scheduler
    private var ids: Set<UInt64> = []
    /// Sequences that ended since the last step: the next plan frees their caches.
    private var ended: [UInt64] = []
    /// Sequences that end before taking any step (nothing left to generate, or withdrawn).
    private var endedUnplanned: [LiveSequence] = []
    private var stepNumber: UInt64 = 0

    public init(executor: any StepExecutor, tokenizer: Tokenizer?, limits: SchedulerLimits = .unlimited) {
        self.executor = executor
        self.tokenizer = tokenizer
        scheduler = Scheduler(limits: limits, pools: executor.cachePools)
    }

    public var load: SchedulerLoad { scheduler.load }

    /// Whether `step` has anything to do.
    public var hasWork: Bool { !scheduler.isIdle || !ended.isEmpty || !endedUnplanned.isEmpty }

    /// Checks a request against the model and the cache limits; returns it with
    /// `maxTokens` cut to what the context can hold.
    public func admissible(_ request: GenerationRequest, label: Int = 0) throws -> GenerationRequest {
        guard !request.prompt.isEmpty else { throw GenerationError.emptyPrompt(request: label) }
        if let bad = request.prompt.first(where: { $0 < 0 || $0 >= executor.vocabSize }) {
            throw GenerationError.tokenOutOfRange(token: bad, vocabSize: executor.vocabSize)
        }
        guard request.prompt.count < executor.contextLength else {
            throw GenerationError.promptTooLong(request: label, tokens: request.prompt.count, contextLength: executor.contextLength)
        }
        try request.sampling.validate()
        var fitted = request
        fitted.maxTokens = max(0, min(request.maxTokens, executor.contextLength - request.prompt.count))
        let positions = fitted.prompt.count + fitted.maxTokens
        guard scheduler.fits(positions: positions) else {
            throw GenerationError.exceedsCacheCapacity(request: label, positions: positions, capacity: scheduler.limits.positionsPerPool)
        }
        return fitted
    }

    /// Queues a request under a caller-chosen id, unique among live requests.
    public func submit(_ request: GenerationRequest, id: UInt64) throws {
        guard !ids.contains(id) else { throw GenerationError.duplicateId(id) }
        let sequence = LiveSequence(id: id, request: try admissible(request, label: Int(truncatingIfNeeded: id)), tokenizer: tokenizer)
        ids.insert(id)
        if sequence.request.maxTokens == 0 { endedUnplanned.append(sequence) } else { scheduler.enqueue(sequence) }
    }

    /// Ends a request: a waiting one at once, a running one before the next step.
    public func cancel(_ id: UInt64) {
        if let waiting = scheduler.withdraw(id) {
            waiting.cancel()
            endedUnplanned.append(waiting)
        } else {
            scheduler.runningSequence(id)?.cancel()
        }
    }

    /// Ends every request (a drain's grace period is over).
    public func cancelAll() {
        for s in scheduler.waiting + scheduler.running { cancel(s.id) }
    }

    /// One forward pass; returns what it did for each sequence it touched.
    public func step() throws -> [GenerationUpdate] {
        var updates = endedUnplanned.map(finish)
        endedUnplanned = []
        for s in scheduler.removeFinished() {
            updates.append(finish(s))
            ended.append(s.id)
        }
        let planned = scheduler.planWork()
        let plan = StepPlan(step: stepNumber, work: planned.map(\.work), finished: ended)
        guard !plan.work.isEmpty || !plan.finished.isEmpty else { return updates }
        ended = []
        let start = DispatchTime.now().uptimeNanoseconds
        let output = try executor.execute(plan)
        let record = StepRecord(plan: plan, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        stats.record(record)
        lastStep = record
        stepNumber += 1
        for (s, w) in planned where w.samples {
            guard let next = output.tokens[w.sequence] else { throw ExecutionError.unknownSequence(w.sequence, step: plan.step) }
            let text = try s.accept(next)
            let kept = s.result.tokens.count == s.result.generated
            updates.append(GenerationUpdate(id: s.id, token: kept ? next : nil, logprobs: kept ? output.logprobs[w.sequence] : nil,
                                            text: text ?? ""))
        }
        for s in scheduler.removeFinished() {
            updates.append(finish(s))
            ended.append(s.id)
        }
        return updates
    }

    private func finish(_ s: LiveSequence) -> GenerationUpdate {
        let tail = s.flush() ?? ""
        ids.remove(s.id)
        return GenerationUpdate(id: s.id, text: tail, finished: s.result)
    }

    /// Generates every request to completion; `onText(request, text)` streams decoded text
    /// as it becomes final (needs a tokenizer).
    public func run(_ requests: [GenerationRequest], onText: (Int, String) -> Void = { _, _ in }) throws -> [GenerationResult] {
        // Submitting only queues: a bad request fails the call before any step runs.
        for (i, r) in requests.enumerated() { try submit(r, id: UInt64(i)) }
        stats = GenerationStats()
        var results = [GenerationResult](repeating: GenerationResult(), count: requests.count)
        while hasWork {
            for u in try step() {
                if !u.text.isEmpty { onText(Int(u.id), u.text) }
                if let done = u.finished { results[Int(u.id)] = done }
            }
        }
        return results
    }
}

/// One forward pass: its prompt and decode tokens and its wall time.
public struct StepRecord: Sendable, Equatable {
    public var promptTokens: Int
    public var decodeTokens: Int
    public var seconds: Double

    init(plan: StepPlan, seconds: Double) {
        decodeTokens = plan.work.filter(\.isDecode).count
        promptTokens = plan.tokenCount - decodeTokens
        self.seconds = seconds
    }

    /// A step that carried any prompt tokens counts as prefill.
    public var isPrefill: Bool { promptTokens > 0 }
}

/// Time spent in forward passes, split into prefill and decode steps.
public struct GenerationStats: Sendable {
    public var prefillTokens = 0, prefillSeconds = 0.0
    public var decodeTokens = 0, decodeSeconds = 0.0

    mutating func record(_ step: StepRecord) {
        if step.isPrefill {
            prefillTokens += step.promptTokens
            prefillSeconds += step.seconds
        } else {
            decodeTokens += step.decodeTokens
            decodeSeconds += step.seconds
        }
    }
}
