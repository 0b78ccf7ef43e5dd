import Foundation

/// The JSON encoding of every response: compact, so that an event fits on one
/// `data:` line of a server-sent event stream, and without escaped slashes, as OpenAI sends it.
public enum OpenAIJSON {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return encoder
    }()

    /// The value's JSON. This module's responses always encode (their log-probabilities are
    /// made finite when built), so a failure is a programming error.
    public static func encode(_ value: some Encodable) -> Data {
        do {
            return try encoder.encode(value)
        } catch {
            preconditionFailure("a response failed to encode as JSON: \(error)")
        }
    }
}
