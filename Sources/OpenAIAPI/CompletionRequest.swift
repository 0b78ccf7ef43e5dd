/// The body of `POST /v1/completions`, with OpenAI's field names and vLLM's extensions
/// (`top_k`, `ignore_eos`).
struct CompletionRequest: Decodable {
    var model: String
    var prompt: CompletionPrompt
    var maxTokens: Int?
    var logprobs: Int?
    var echo: Bool?
    var shared: SharedFields

    /// OpenAI's default for completions.
    static let defaultMaxTokens = 16
    /// OpenAI's limit on `logprobs` for completions.
    static let maxLogprobs = 5

    enum CodingKeys: String, CodingKey {
        case model, prompt, logprobs, echo
        case maxTokens = "max_tokens"
    }

    init(from decoder: any Decoder) throws {
        let fields = try decoder.object(keyedBy: CodingKeys.self)
        model = try fields.required(.model)
        prompt = try fields.required(.prompt)
        maxTokens = try fields.optional(.maxTokens)
        logprobs = try fields.optional(.logprobs)
        echo = try fields.optional(.echo)
        shared = try SharedFields(from: decoder)
    }

    func validated() throws(APIError) -> ValidatedRequest {
        let maxTokens = maxTokens ?? Self.defaultMaxTokens
        try ensure(maxTokens >= 1, "'max_tokens' must be at least 1.", param: "max_tokens")
        if let logprobs {
            try ensure((0...Self.maxLogprobs).contains(logprobs),
                       "'logprobs' must be between 0 and \(Self.maxLogprobs).", param: "logprobs")
        }
        let echo = echo ?? false
        try ensure(!(echo && logprobs != nil), "echo with logprobs is not supported.", param: "echo")
        return try shared.request(model: model, prompt: prompt.validated(), maxTokens: maxTokens, logprobs: logprobs,
                                  echo: echo)
    }
}

/// `prompt`: a string or an array of token ids, or either of them alone in an array.
enum CompletionPrompt: RequestValue {
    case text(String)
    case tokens([Int])

    static let expectation = "a string or an array of token ids"

    init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer()
        if let text = try? value.decode(String.self) {
            self = .text(text)
        } else if let tokens = try? value.decode([Int].self) {
            self = .tokens(tokens)
        } else if let texts = try? value.decode([String].self) {
            self = .text(try Self.only(texts))
        } else {
            self = .tokens(try Self.only(value.decode([[Int]].self)))
        }
    }

    /// OpenAI batches several prompts in one request; this server takes one per request.
    private static func only<Prompt>(_ prompts: [Prompt]) throws -> Prompt {
        guard prompts.count == 1 else {
            throw APIError.invalidRequest("Only one prompt per request is supported.", param: "prompt")
        }
        return prompts[0]
    }

    func validated() throws(APIError) -> ValidatedRequest.Prompt {
        switch self {
        case .text(let text):
            try ensure(!text.isEmpty, "'prompt' must not be empty.", param: "prompt")
            return .text(text)
        case .tokens(let tokens):
            try ensure(!tokens.isEmpty, "'prompt' must not be empty.", param: "prompt")
            if let negative = tokens.first(where: { $0 < 0 }) {
                throw .invalidRequest("'prompt' token ids must not be negative; found \(negative).", param: "prompt")
            }
            return .tokens(tokens)
        }
    }
}
