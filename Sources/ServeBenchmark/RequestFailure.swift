/// Why a benchmark request did not complete; its description is what the report shows.
public enum RequestFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server answered with a status other than 200; `message` is its error message or body.
    case httpStatus(Int, message: String)
    /// The server put an error object in the stream.
    case streamError(String)
    /// A `data:` payload that is not a completion chunk, or an event after `[DONE]`.
    case malformedStream(String)
    case missingDone
    case noText
    case missingUsage
    case timeout(seconds: Double)
    /// Connecting, sending or reading failed.
    case transport(String)

    public var description: String {
        switch self {
        case .httpStatus(let status, let message): "HTTP \(status): \(message)"
        case .streamError(let message): "error in stream: \(message)"
        case .malformedStream(let detail): "malformed stream: \(detail)"
        case .missingDone: "the stream ended without 'data: [DONE]' (the server closed it early)"
        case .noText: "no chunk carried text, so there is no first token to time (does the server stream text deltas?)"
        case .missingUsage: "no usage chunk, so the output tokens are unknown (the server ignored stream_options.include_usage)"
        case .timeout(let seconds): "no [DONE] within \(seconds) s (raise --timeout, or lower --rate or --concurrency)"
        case .transport(let detail): "connection failed: \(detail)"
        }
    }
}
