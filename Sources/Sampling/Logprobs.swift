import Foundation

/// A token with its log-probability under the model (log-softmax of the raw logits,
/// before temperature and truncation, as OpenAI-compatible servers report it).
public struct TokenLogprob: Sendable, Hashable {
    public var token: Int
    public var logprob: Float

    public init(token: Int, logprob: Float) {
        self.token = token
        self.logprob = logprob
    }
}

/// The chosen token's log-probability and the most likely alternatives at that position.
public struct TokenLogprobs: Sendable, Hashable {
    public var chosen: TokenLogprob
    /// Most likely first; ties by lower id.
    public var top: [TokenLogprob]

    public init(chosen: TokenLogprob, top: [TokenLogprob]) {
        self.chosen = chosen
        self.top = top
    }

    /// Log-softmax of `logits` at `chosen` and at the `top` most likely tokens.
    public init(logits: UnsafeBufferPointer<Float>, chosen: Int, top count: Int) {
        let best = logits[Sampler.argmax(logits)]
        var sum = 0.0
        for logit in logits where !logit.isNaN { sum += exp(Double(logit - best)) }
        let logNormalizer = Double(best) + log(sum)
        func logprob(_ id: Int) -> Float { Float(Double(logits[id]) - logNormalizer) }
        self.chosen = TokenLogprob(token: chosen, logprob: logprob(chosen))
        let ids = count > 0 ? Sampler.largest(min(count, logits.count), of: logits) : []
        top = ids.map { TokenLogprob(token: $0, logprob: logprob($0)) }
            .sorted { $0.logprob > $1.logprob || ($0.logprob == $1.logprob && $0.token < $1.token) }
    }
}
