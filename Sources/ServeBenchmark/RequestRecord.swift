/// One measured request: when it went out and how it ended.
public struct RequestRecord: Sendable {
    public var index: Int
    /// Seconds from the start of the run to the send.
    public var sentAt: Double
    public var outcome: Result<CompletedRequest, RequestFailure>

    public init(index: Int, sentAt: Double, outcome: Result<CompletedRequest, RequestFailure>) {
        self.index = index
        self.sentAt = sentAt
        self.outcome = outcome
    }

    public var completed: CompletedRequest? {
        if case .success(let request) = outcome { request } else { nil }
    }

    public var failure: RequestFailure? {
        if case .failure(let failure) = outcome { failure } else { nil }
    }
}

extension RequestRecord: Encodable {
    enum CodingKeys: String, CodingKey {
        case index, sentAt = "sent_at_s", ttft = "ttft_ms", tpot = "tpot_ms", e2e = "e2e_ms"
        case promptTokens = "prompt_tokens", outputTokens = "output_tokens", error
    }

    public func encode(to encoder: any Encoder) throws {
        var fields = encoder.container(keyedBy: CodingKeys.self)
        try fields.encode(index, forKey: .index)
        try fields.encode(sentAt, forKey: .sentAt)
        try fields.encode(completed.map { $0.ttft * 1000 }, forKey: .ttft)
        try fields.encode(completed?.tpot.map { $0 * 1000 }, forKey: .tpot)
        try fields.encode(completed.map { $0.e2e * 1000 }, forKey: .e2e)
        try fields.encode(completed?.promptTokens, forKey: .promptTokens)
        try fields.encode(completed?.outputTokens, forKey: .outputTokens)
        try fields.encode(failure?.description, forKey: .error)
    }
}
