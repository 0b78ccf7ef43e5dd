/// A generated token decoded for the client, with its log-probability and the most likely
/// tokens at its position: what the server fills from the engine's token ids to build
/// either logprobs format.
public struct DecodedTokenLogprobs: Sendable, Equatable {
    public struct Token: Sendable, Equatable {
        public var text: String
        /// The token's UTF-8 bytes: a token may hold part of a character, which `text` cannot show.
        public var bytes: [UInt8]
        public var logprob: Float

        public init(text: String, bytes: [UInt8], logprob: Float) {
            self.text = text
            self.bytes = bytes
            self.logprob = logprob
        }

        /// JSON has no infinity: a token of probability zero reports -9999, as OpenAI and vLLM do.
        var finiteLogprob: Float { logprob.isFinite ? max(logprob, -9999) : -9999 }
    }

    public var chosen: Token
    /// Most likely first.
    public var top: [Token]

    public init(chosen: Token, top: [Token]) {
        self.chosen = chosen
        self.top = top
    }
}

/// The legacy completions format: parallel arrays, one entry per token.
public struct CompletionLogprobs: Encodable, Sendable, Equatable {
    public var tokens: [String]
    public var tokenLogprobs: [Float?]
    public var topLogprobs: [[String: Float]?]
    /// Where each token starts in the choice's text, in Unicode scalars (Python's string
    /// indices, which OpenAI's clients use).
    public var textOffset: [Int]

    enum CodingKeys: String, CodingKey {
        case tokens
        case tokenLogprobs = "token_logprobs", topLogprobs = "top_logprobs", textOffset = "text_offset"
    }

    /// `textOffset` is where the first token starts: the length of the text already sent
    /// for this choice (streaming) or of the echoed prompt.
    public init(_ tokens: [DecodedTokenLogprobs], textOffset: Int) {
        self.tokens = tokens.map(\.chosen.text)
        tokenLogprobs = tokens.map(\.chosen.finiteLogprob)
        // Two ids can decode to the same text (partial characters); the likelier one is kept.
        topLogprobs = tokens.map { token in
            Dictionary(token.top.map { ($0.text, $0.finiteLogprob) }, uniquingKeysWith: max)
        }
        var offset = textOffset
        self.textOffset = tokens.map { token in
            defer { offset += token.chosen.text.unicodeScalars.count }
            return offset
        }
    }
}

/// The chat format: one entry per token, each with its alternatives.
public struct ChatLogprobs: Encodable, Sendable, Equatable {
    public var content: [Entry]

    public init(_ tokens: [DecodedTokenLogprobs]) {
        content = tokens.map { Entry($0) }
    }

    public struct Entry: Encodable, Sendable, Equatable {
        public var token: String
        public var logprob: Float
        public var bytes: [UInt8]
        public var topLogprobs: [Alternative]

        enum CodingKeys: String, CodingKey { case token, logprob, bytes, topLogprobs = "top_logprobs" }

        init(_ token: DecodedTokenLogprobs) {
            self.token = token.chosen.text
            logprob = token.chosen.finiteLogprob
            bytes = token.chosen.bytes
            topLogprobs = token.top.map(Alternative.init)
        }
    }

    public struct Alternative: Encodable, Sendable, Equatable {
        public var token: String
        public var logprob: Float
        public var bytes: [UInt8]

        init(_ token: DecodedTokenLogprobs.Token) {
            self.token = token.text
            logprob = token.finiteLogprob
            bytes = token.bytes
        }
    }
}
