import Foundation

/// The fields of a streamed completion or chat-completion chunk that the benchmark reads.
struct StreamChunk: Decodable {
    var choices: [Choice]?
    var usage: Usage?
    var error: ErrorBody?

    struct Choice: Decodable {
        /// `/v1/completions` streams text here…
        var text: String?
        /// …and `/v1/chat/completions` here.
        var delta: Delta?

        var generated: String { text ?? delta?.content ?? "" }
    }

    struct Delta: Decodable {
        var content: String?
    }

    struct Usage: Decodable {
        var promptTokens: Int
        var completionTokens: Int

        enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens" }
    }

    struct ErrorBody: Decodable {
        var message: String
    }

    /// Whether this chunk carries generated text: the events TTFT and ITL time.
    var carriesText: Bool {
        choices?.first.map { !$0.generated.isEmpty } ?? false
    }
}
