/// The body of `POST /v1/chat/completions`, with OpenAI's field names and vLLM's extensions
/// (`top_k`, `ignore_eos`).
struct ChatCompletionRequest: Decodable {
    var model: String
    var messages: [ChatMessage]
    var maxTokens: Int?
    /// OpenAI's newer name for `max_tokens`; wins when both are sent.
    var maxCompletionTokens: Int?
    var logprobs: Bool?
    var topLogprobs: Int?
    var shared: SharedFields

    /// OpenAI's limit on `top_logprobs`.
    static let maxTopLogprobs = 20

    enum CodingKeys: String, CodingKey {
        case model, messages, logprobs
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topLogprobs = "top_logprobs"
    }

    init(from decoder: any Decoder) throws {
        let fields = try decoder.object(keyedBy: CodingKeys.self)
        model = try fields.required(.model)
        messages = try fields.required(.messages)
        maxTokens = try fields.optional(.maxTokens)
        maxCompletionTokens = try fields.optional(.maxCompletionTokens)
        logprobs = try fields.optional(.logprobs)
        topLogprobs = try fields.optional(.topLogprobs)
        shared = try SharedFields(from: decoder)
    }

    func validated() throws(APIError) -> ValidatedRequest {
        try ensure(!messages.isEmpty, "'messages' must contain at least one message.", param: "messages")
        for (value, param) in [(maxTokens, "max_tokens"), (maxCompletionTokens, "max_completion_tokens")] {
            if let value { try ensure(value >= 1, "'\(param)' must be at least 1.", param: param) }
        }
        if let topLogprobs {
            try ensure(logprobs == true, "'top_logprobs' requires 'logprobs' to be true.", param: "top_logprobs")
            try ensure((0...Self.maxTopLogprobs).contains(topLogprobs),
                       "'top_logprobs' must be between 0 and \(Self.maxTopLogprobs).", param: "top_logprobs")
        }
        let turns = messages.map { ValidatedRequest.ChatTurn(role: $0.role, content: $0.content) }
        return try shared.request(model: model, prompt: .chat(turns), maxTokens: maxCompletionTokens ?? maxTokens,
                                  logprobs: logprobs == true ? (topLogprobs ?? 0) : nil)
    }
}

/// One entry of `messages`. Roles are checked here, where the message's index is known for
/// the error's `param`.
struct ChatMessage: RequestValue {
    var role: String
    var content: String

    static let expectation = "an object"

    enum CodingKeys: String, CodingKey { case role, content }

    init(from decoder: any Decoder) throws {
        let fields = try decoder.object(keyedBy: CodingKeys.self)
        let role: String = try fields.required(.role)
        switch role {
        case "system", "user", "assistant": self.role = role
        // OpenAI's newer name for the system role.
        case "developer": self.role = "system"
        default:
            let param = APIError.parameterName(fields.codingPath + [CodingKeys.role])
            throw APIError.invalidRequest(
                "Unsupported role '\(role)' in '\(param)': use system, developer, user or assistant.", param: param)
        }
        let content: MessageContent = try fields.required(.content)
        self.content = content.text
    }
}

/// A message's `content`: a string, or an array of text parts.
struct MessageContent: RequestValue {
    var text: String

    static let expectation = "a string or an array of content parts"

    init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer()
        if let text = try? value.decode(String.self) {
            self.text = text
        } else {
            // Parts are joined on separate lines, as vLLM joins them.
            text = try value.decode([TextPart].self).map(\.text).joined(separator: "\n")
        }
    }
}

/// `{"type": "text", "text": …}`; images, audio and files are not supported.
struct TextPart: RequestValue {
    var text: String

    static let expectation = "an object"

    enum CodingKeys: String, CodingKey { case type, text }

    init(from decoder: any Decoder) throws {
        let fields = try decoder.object(keyedBy: CodingKeys.self)
        let type: String = try fields.required(.type)
        guard type == "text" else {
            let param = APIError.parameterName(fields.codingPath + [CodingKeys.type])
            throw APIError.invalidRequest("Content parts of type '\(type)' are not supported; only 'text' is.",
                                          param: param)
        }
        text = try fields.required(.text)
    }
}
