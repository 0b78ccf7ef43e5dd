/// Streamed responses as OpenAI frames them: one `data:` event per chunk, then `[DONE]`.
public enum ServerSentEvents {
    public static func data(_ value: some Encodable) -> String {
        "data: " + String(decoding: OpenAIJSON.encode(value), as: UTF8.self) + "\n\n"
    }

    public static let done = "data: [DONE]\n\n"
}
