import Foundation

/// The response of `POST /v1/chat/completions`.
public struct ChatCompletionResponse: Encodable, Sendable {
    public var id: String
    public let object = "chat.completion"
    /// Unix seconds.
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage

    public init(id: String, created: Int, model: String, choices: [Choice], usage: Usage) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }

    /// A fresh id in OpenAI's form, "chatcmpl-…".
    public static func makeID() -> String {
        "chatcmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    public struct Choice: Encodable, Sendable {
        public var index: Int
        public var message: Message
        public var logprobs: ChatLogprobs?
        public var finishReason: ChoiceFinishReason

        public init(index: Int = 0, message: Message, logprobs: ChatLogprobs? = nil, finishReason: ChoiceFinishReason) {
            self.index = index
            self.message = message
            self.logprobs = logprobs
            self.finishReason = finishReason
        }

        enum CodingKeys: String, CodingKey { case index, message, logprobs, finishReason = "finish_reason" }

        public func encode(to encoder: any Encoder) throws {
            var fields = encoder.container(keyedBy: CodingKeys.self)
            try fields.encode(index, forKey: .index)
            try fields.encode(message, forKey: .message)
            // encode, not encodeIfPresent: OpenAI sends absent logprobs as null.
            try fields.encode(logprobs, forKey: .logprobs)
            try fields.encode(finishReason, forKey: .finishReason)
        }
    }

    public struct Message: Encodable, Sendable {
        public let role = "assistant"
        public var content: String

        public init(content: String) {
            self.content = content
        }
    }
}

/// One event of a streamed chat completion.
public struct ChatCompletionChunk: Encodable, Sendable {
    public var id: String
    public let object = "chat.completion.chunk"
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: ChunkUsage

    public init(id: String, created: Int, model: String, choices: [Choice], usage: ChunkUsage) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }

    /// The last chunk when the client asked for usage: no choices, only the totals.
    public static func usageReport(id: String, created: Int, model: String, usage: Usage) -> ChatCompletionChunk {
        ChatCompletionChunk(id: id, created: created, model: model, choices: [], usage: .final(usage))
    }

    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }

    public func encode(to encoder: any Encoder) throws {
        var fields = encoder.container(keyedBy: CodingKeys.self)
        try fields.encode(id, forKey: .id)
        try fields.encode(object, forKey: .object)
        try fields.encode(created, forKey: .created)
        try fields.encode(model, forKey: .model)
        try fields.encode(choices, forKey: .choices)
        try usage.encode(into: &fields, forKey: .usage)
    }

    public struct Choice: Encodable, Sendable {
        public var index: Int
        public var delta: Delta
        public var logprobs: ChatLogprobs?
        /// nil until the chunk that ends the choice.
        public var finishReason: ChoiceFinishReason?

        public init(index: Int = 0, delta: Delta, logprobs: ChatLogprobs? = nil, finishReason: ChoiceFinishReason? = nil) {
            self.index = index
            self.delta = delta
            self.logprobs = logprobs
            self.finishReason = finishReason
        }

        enum CodingKeys: String, CodingKey { case index, delta, logprobs, finishReason = "finish_reason" }

        public func encode(to encoder: any Encoder) throws {
            var fields = encoder.container(keyedBy: CodingKeys.self)
            try fields.encode(index, forKey: .index)
            try fields.encode(delta, forKey: .delta)
            try fields.encode(logprobs, forKey: .logprobs)
            try fields.encode(finishReason, forKey: .finishReason)
        }
    }

    /// What a chunk adds to the message; absent keys are omitted, as OpenAI omits them
    /// (the last chunk's delta is `{}`).
    public struct Delta: Encodable, Sendable {
        /// "assistant" on the first chunk only.
        public var role: String?
        public var content: String?

        public init(role: String? = nil, content: String? = nil) {
            self.role = role
            self.content = content
        }

        /// The first chunk: the role, and empty content as OpenAI sends it.
        public static let start = Delta(role: "assistant", content: "")
    }
}
