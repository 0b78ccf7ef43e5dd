import Foundation

/// The OpenAI route a benchmark sends to.
public enum Endpoint: String, CaseIterable, Encodable, Sendable {
    case completions
    case chat

    public var path: String {
        switch self {
        case .completions: "/v1/completions"
        case .chat: "/v1/chat/completions"
        }
    }
}

/// The body of one benchmark request: streamed with usage, greedy, and generating exactly
/// `max_tokens` (`ignore_eos`) so every request does the same work.
struct StreamedRequestBody: Encodable {
    var model: String
    var prompt: [Int]?
    var messages: [Message]?
    var maxTokens: Int
    let stream = true
    let streamOptions = StreamOptions()
    let ignoreEos = true
    let temperature = 0

    struct Message: Encodable {
        let role = "user"
        var content: String
    }

    struct StreamOptions: Encodable {
        let includeUsage = true
    }

    init(endpoint: Endpoint, model: String, prompts: PromptSource, index: Int, maxTokens: Int) {
        self.model = model
        self.maxTokens = maxTokens
        switch endpoint {
        case .completions: prompt = prompts.tokens(for: index)
        case .chat: messages = [Message(content: prompts.text(for: index))]
        }
    }

    func json() -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        // Encoding strings, integers and booleans cannot fail.
        return try! encoder.encode(self)
    }
}
