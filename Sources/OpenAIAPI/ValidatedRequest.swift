import Foundation

/// A generation request after validation, in terms the engine understands: no OpenAI types,
/// every default applied, every value in range. The model name and the vocabulary bound of
/// token ids are left to the server, which knows the model.
public struct ValidatedRequest: Sendable, Equatable {
    public enum Prompt: Sendable, Equatable {
        case text(String)
        case tokens([Int])
        case chat([ChatTurn])
    }

    public struct ChatTurn: Sendable, Equatable {
        /// "system", "user" or "assistant" (OpenAI's "developer" arrives as "system").
        public var role: String
        public var content: String

        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }
    }

    public var model: String
    public var prompt: Prompt
    /// nil: until the context is full.
    public var maxTokens: Int?
    public var temperature: Float
    public var topP: Float
    /// 0: off.
    public var topK: Int
    public var seed: UInt64?
    public var stop: [String]
    public var stream: Bool
    /// Streaming only: end the stream with a usage chunk (non-streamed responses always carry usage).
    public var includeUsage: Bool
    /// nil: none; else how many top alternatives to report with each token (0: the chosen token only).
    public var logprobs: Int?
    /// Completions only: the response text starts with the prompt.
    public var echo: Bool
    public var ignoreEOS: Bool

    public init(model: String, prompt: Prompt, maxTokens: Int? = nil, temperature: Float = 1, topP: Float = 1,
                topK: Int = 0, seed: UInt64? = nil, stop: [String] = [], stream: Bool = false, includeUsage: Bool = false,
                logprobs: Int? = nil, echo: Bool = false, ignoreEOS: Bool = false) {
        self.model = model
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
        self.stop = stop
        self.stream = stream
        self.includeUsage = includeUsage
        self.logprobs = logprobs
        self.echo = echo
        self.ignoreEOS = ignoreEOS
    }

    /// Validates the body of `POST /v1/completions`.
    public static func completion(from body: Data) throws(APIError) -> ValidatedRequest {
        try RequestBody.decode(CompletionRequest.self, from: body).validated()
    }

    /// Validates the body of `POST /v1/chat/completions`.
    public static func chatCompletion(from body: Data) throws(APIError) -> ValidatedRequest {
        try RequestBody.decode(ChatCompletionRequest.self, from: body).validated()
    }
}
