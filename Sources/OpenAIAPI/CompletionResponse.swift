import Foundation

/// The response of `POST /v1/completions`.
public struct CompletionResponse: Encodable, Sendable {
    public var id: String
    public let object = "text_completion"
    /// Unix seconds.
    public var created: Int
    public var model: String
    public var choices: [CompletionChoice]
    public var usage: Usage

    public init(id: String, created: Int, model: String, choices: [CompletionChoice], usage: Usage) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }

    /// A fresh id in OpenAI's form, "cmpl-…".
    public static func makeID() -> String {
        "cmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }
}

/// One event of a streamed completion: same shape as the response, with text deltas.
public struct CompletionChunk: Encodable, Sendable {
    public var id: String
    public let object = "text_completion"
    public var created: Int
    public var model: String
    public var choices: [CompletionChoice]
    public var usage: ChunkUsage

    public init(id: String, created: Int, model: String, choices: [CompletionChoice], usage: ChunkUsage) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }

    /// The last chunk when the client asked for usage: no choices, only the totals.
    public static func usageReport(id: String, created: Int, model: String, usage: Usage) -> CompletionChunk {
        CompletionChunk(id: id, created: created, model: model, choices: [], usage: .final(usage))
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
}

/// A choice of a completion or of a streamed chunk (where `text` is the delta).
public struct CompletionChoice: Encodable, Sendable {
    public var index: Int
    public var text: String
    public var logprobs: CompletionLogprobs?
    /// nil until the chunk that ends the choice.
    public var finishReason: ChoiceFinishReason?

    public init(index: Int = 0, text: String, logprobs: CompletionLogprobs? = nil, finishReason: ChoiceFinishReason?) {
        self.index = index
        self.text = text
        self.logprobs = logprobs
        self.finishReason = finishReason
    }

    enum CodingKeys: String, CodingKey { case index, text, logprobs, finishReason = "finish_reason" }

    public func encode(to encoder: any Encoder) throws {
        var fields = encoder.container(keyedBy: CodingKeys.self)
        try fields.encode(index, forKey: .index)
        try fields.encode(text, forKey: .text)
        // encode, not encodeIfPresent: OpenAI sends absent values as null.
        try fields.encode(logprobs, forKey: .logprobs)
        try fields.encode(finishReason, forKey: .finishReason)
    }
}
