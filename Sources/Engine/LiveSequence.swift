import Sampling
import Tokenizer

/// One request while it is being generated: where its prompt stands, its stop conditions
/// and the text it has streamed.
final class LiveSequence {
    let id: UInt64
    let request: GenerationRequest
    /// The cache pool it was admitted to; nil while it waits.
    var pool: Int?
    /// Prompt tokens already sent to the model.
    private(set) var prefilled = 0
    private(set) var result = GenerationResult()
    private(set) var isFinished = false
    private var decoder: StreamingDecoder?
    /// Decoded text not yet streamed: held back while it could still begin a stop string.
    private var pending = ""

    init(id: UInt64, request: GenerationRequest, tokenizer: Tokenizer?) {
        self.id = id
        self.request = request
        decoder = tokenizer.map { StreamingDecoder(tokenizer: $0) }
    }

    /// Cache positions the sequence may reach; admission reserves them all.
    var reservation: Int { request.prompt.count + request.maxTokens }

    var isPrefilling: Bool { prefilled < request.prompt.count }

    /// The next prompt chunk, at most `budget` tokens; the last chunk samples.
    func prefillWork(budget: Int) -> StepPlan.Work {
        let count = min(budget, request.prompt.count - prefilled)
        let start = prefilled
        prefilled += count
        return StepPlan.Work(sequence: id, tokens: Array(request.prompt[start ..< prefilled]), startPosition: start,
                             samples: prefilled == request.prompt.count,
                             joining: start == 0 ? request.sampling : nil, capacity: reservation, pool: pool ?? 0,
                             logprobs: request.logprobs)
    }

    /// Its last token, once the prompt is in.
    var decodeWork: StepPlan.Work {
        StepPlan.Work(sequence: id, tokens: [result.tokens.last!], startPosition: request.prompt.count + result.tokens.count - 1,
                      pool: pool ?? 0, logprobs: request.logprobs)
    }

    /// Takes the sampled token; returns text that is now final, if any.
    func accept(_ token: Int) throws -> String? {
        result.generated += 1
        if request.stopTokenIds.contains(token) {
            result.finishReason = .stopToken
            isFinished = true
            return nil
        }
        result.tokens.append(token)
        if result.tokens.count >= request.maxTokens { isFinished = true }
        guard decoder != nil else { return nil }
        let piece: String
        do {
            piece = try decoder!.append(token)
        } catch TokenizerError.unknownTokenId {
            // Checkpoints pad the embedding table past the tokenizer; those ids read as nothing.
            piece = ""
        }
        pending += piece
        for stop in request.stopStrings where !stop.isEmpty {
            if let range = pending.range(of: stop) {
                pending = String(pending[..<range.lowerBound])
                result.finishReason = .stopString
                isFinished = true
                return nil
            }
        }
        let hold = request.stopStrings.map { Self.overlap(pending, prefixOf: $0) }.max() ?? 0
        let ready = String(pending.dropLast(hold))
        pending = String(pending.suffix(hold))
        result.text += ready
        return ready.isEmpty ? nil : ready
    }

    /// Ends the sequence early (a cancelled request, or one cut by a drain).
    func cancel() {
        guard !isFinished else { return }
        result.finishReason = .cancelled
        isFinished = true
    }

    /// Text still held back when the sequence ends.
    func flush() -> String? {
        let tail = pending + (result.finishReason == .stopString ? "" : (decoder?.finish() ?? ""))
        pending = ""
        result.text += tail
        return tail.isEmpty ? nil : tail
    }

    /// Length of the longest suffix of `text` that is a proper prefix of `stop`.
    static func overlap(_ text: String, prefixOf stop: String) -> Int {
        var n = min(text.count, stop.count - 1)
        while n > 0 {
            if stop.hasPrefix(text.suffix(n)) { return n }
            n -= 1
        }
        return 0
    }
}
