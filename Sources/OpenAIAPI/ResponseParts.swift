/// Why a choice ended, as `finish_reason` says it.
public enum ChoiceFinishReason: String, Encodable, Sendable {
    /// An end-of-sequence token or a stop sequence.
    case stop
    /// `max_tokens`, or the end of the context.
    case length
    /// Cut short: the client cancelled, or the server was shutting down (vLLM's name).
    case abort
}

/// Token counts of a request.
public struct Usage: Encodable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int { promptTokens + completionTokens }

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }

    public func encode(to encoder: any Encoder) throws {
        var fields = encoder.container(keyedBy: CodingKeys.self)
        try fields.encode(promptTokens, forKey: .promptTokens)
        try fields.encode(completionTokens, forKey: .completionTokens)
        try fields.encode(totalTokens, forKey: .totalTokens)
    }
}

/// The `usage` key of a streamed chunk. A client that asked for usage
/// (`stream_options.include_usage`) gets `"usage": null` on every chunk and the totals on a
/// last chunk without choices; other clients never see the key.
public enum ChunkUsage: Sendable, Equatable {
    case notRequested
    case pending
    case final(Usage)

    public init(includeUsage: Bool) {
        self = includeUsage ? .pending : .notRequested
    }

    func encode<Key>(into fields: inout KeyedEncodingContainer<Key>, forKey key: Key) throws {
        switch self {
        case .notRequested: break
        case .pending: try fields.encodeNil(forKey: key)
        case .final(let usage): try fields.encode(usage, forKey: key)
        }
    }
}
