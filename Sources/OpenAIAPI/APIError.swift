import Foundation

/// An error as OpenAI's API reports it: an HTTP status and the body
/// `{"error": {"message", "type", "param", "code"}}`, with `param` and `code` present as
/// `null` when they do not apply.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    /// OpenAI's category: "invalid_request_error", "rate_limit_error", "server_error".
    public var type: String
    /// The request field at fault, as a path: "max_tokens", "messages[1].content".
    public var param: String?
    /// A machine-readable reason: "model_not_found", "context_length_exceeded".
    public var code: String?

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    /// The response body.
    public var body: Data { OpenAIJSON.encode(Envelope(error: self)) }

    public var description: String {
        "\(status) \(type): \(message)" + (param.map { " (param: \($0))" } ?? "")
    }

    private struct Envelope: Encodable {
        let error: APIError

        enum CodingKeys: String, CodingKey { case error }
        enum ErrorKeys: String, CodingKey { case message, type, param, code }

        func encode(to encoder: any Encoder) throws {
            var outer = encoder.container(keyedBy: CodingKeys.self)
            var inner = outer.nestedContainer(keyedBy: ErrorKeys.self, forKey: .error)
            try inner.encode(error.message, forKey: .message)
            try inner.encode(error.type, forKey: .type)
            // Optionals encoded with encode, not encodeIfPresent: OpenAI sends the keys as null.
            try inner.encode(error.param, forKey: .param)
            try inner.encode(error.code, forKey: .code)
        }
    }
}

// The errors the server answers with, worded as OpenAI words them where it has an equivalent.
extension APIError {
    /// 400: the request is malformed or asks for something unsupported.
    public static func invalidRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// 404: the request names a model this server does not serve.
    public static func modelNotFound(_ name: String) -> APIError {
        APIError(status: 404, message: "The model '\(name)' does not exist.", type: "invalid_request_error",
                 param: "model", code: "model_not_found")
    }

    /// 400: the prompt, plus the tokens asked for, does not fit the model's context.
    /// `maxTokens` nil: the prompt alone is too long. `param` is "messages" for chat, "prompt" for completions.
    public static func contextLengthExceeded(promptTokens: Int, maxTokens: Int?, contextLength: Int,
                                             param: String = "messages") -> APIError {
        let input = param == "messages" ? "the messages" : "the prompt"
        let limit = "This model's maximum context length is \(contextLength) tokens."
        let message = if let maxTokens {
            "\(limit) However, you requested \(promptTokens + maxTokens) tokens (\(promptTokens) in \(input), "
                + "\(maxTokens) in the completion). Please reduce the length of \(input) or the completion."
        } else {
            "\(limit) However, \(input) resulted in \(promptTokens) tokens. Please reduce the length of \(input)."
        }
        return invalidRequest(message, param: param, code: "context_length_exceeded")
    }

    /// 401: no `Authorization: Bearer` header although the server requires a key.
    public static let missingAPIKey = APIError(
        status: 401, message: "Missing bearer authentication: send your API key in an 'Authorization: Bearer <key>' header.",
        type: "invalid_request_error")

    /// 401: a key was sent but it is not the server's.
    public static let incorrectAPIKey = APIError(
        status: 401, message: "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key")

    /// 413: the body is larger than the server accepts.
    public static func payloadTooLarge(limit: Int) -> APIError {
        APIError(status: 413, message: "The request body exceeds the limit of \(limit) bytes.", type: "invalid_request_error")
    }

    /// 429: the admission queue is full; the client should retry later.
    public static let queueFull = APIError(
        status: 429, message: "The server has too many requests waiting; retry later.", type: "rate_limit_error",
        code: "queue_full")

    /// 503: the server cannot take requests now (loading the model, shutting down).
    public static func unavailable(_ reason: String) -> APIError {
        APIError(status: 503, message: reason, type: "server_error")
    }

    /// 500: a failure on the server's side, not the request's.
    public static func internalError(_ message: String) -> APIError {
        APIError(status: 500, message: message, type: "server_error")
    }

    /// 404: no route at this path.
    public static func notFound(path: String) -> APIError {
        APIError(status: 404, message: "Invalid URL (\(path)).", type: "invalid_request_error")
    }

    /// 405: the route exists but not for this HTTP method.
    public static let methodNotAllowed = APIError(
        status: 405, message: "This HTTP method is not allowed on this route.", type: "invalid_request_error")
}

// The errors request decoding raises.
extension APIError {
    static func wrongType(at path: [any CodingKey], expected: String) -> APIError {
        guard !path.isEmpty else { return invalidRequest("The request body must be a JSON object.") }
        let param = parameterName(path)
        return invalidRequest("'\(param)' must be \(expected).", param: param, code: "invalid_type")
    }

    static func missingParameter(at path: [any CodingKey]) -> APIError {
        let param = parameterName(path)
        return invalidRequest("Missing required parameter: '\(param)'.", param: param)
    }

    /// "messages[1].content", as OpenAI names a nested field.
    static func parameterName(_ path: [any CodingKey]) -> String {
        path.reduce(into: "") { name, key in
            if let index = key.intValue {
                name += "[\(index)]"
            } else {
                name += name.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
    }
}
