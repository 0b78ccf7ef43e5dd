import Tokenizer

/// One request while it is being generated: its cache, sampler and stop conditions.
final class LiveSequence {
    let index: Int
    let request: GenerationRequest
    private(set) var result = GenerationResult()
    private(set) var isFinished = false
    private var decoder: StreamingDecoder?
    /// Decoded text not yet streamed: held back while it could still begin a stop string.
    private var pending = ""

    init(index: Int, request: GenerationRequest, tokenizer: Tokenizer?) throws {
        self.index = index
        self.request = request
        try request.sampling.validate()
        decoder = tokenizer.map { StreamingDecoder(tokenizer: $0) }
    }

    /// Sequence ids are request indices: unique within one run.
    var sequence: UInt64 { UInt64(index) }

    /// This sequence's share of the next step: its prompt when it joins, then its last token.
    var nextWork: StepPlan.Work {
        guard let last = result.tokens.last else {
            return StepPlan.Work(sequence: sequence, tokens: request.prompt, startPosition: 0,
                                 joining: request.sampling, capacity: request.prompt.count + request.maxTokens)
        }
        return StepPlan.Work(sequence: sequence, tokens: [last], startPosition: request.prompt.count + result.tokens.count - 1)
    }

    /// Takes the sampled token; returns text that is now final, if any.
    func accept(_ token: Int) throws -> String? {
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
