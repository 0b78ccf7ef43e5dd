import Foundation

/// A request that completed: its times in seconds from the moment it was sent.
public struct CompletedRequest: Equatable, Sendable {
    /// Time to first token: the first chunk that carries text.
    public var ttft: Double
    /// End to end: until the stream ended.
    public var e2e: Double
    /// Inter-token latencies: gaps between successive text chunks.
    public var itl: [Double]
    public var promptTokens: Int
    public var outputTokens: Int

    public init(ttft: Double, e2e: Double, itl: [Double], promptTokens: Int, outputTokens: Int) {
        self.ttft = ttft
        self.e2e = e2e
        self.itl = itl
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
    }

    /// Time per output token after the first; nil with one token, which has no such time.
    public var tpot: Double? {
        outputTokens > 1 ? (e2e - ttft) / Double(outputTokens - 1) : nil
    }
}

/// Times one streamed response from its events: text chunks give TTFT and ITL, the usage
/// chunk the token counts, `[DONE]` a complete stream.
public struct StreamMeasurement {
    private let decoder = JSONDecoder()
    private var firstText: Double?
    private var lastText: Double?
    private var gaps: [Double] = []
    private var usage: StreamChunk.Usage?
    private var done = false

    public init() {}

    /// Takes in an event that arrived `seconds` after the request was sent.
    public mutating func observe(_ event: StreamEvent, at seconds: Double) throws(RequestFailure) {
        guard !done else { throw .malformedStream("an event after [DONE]") }
        guard case .data(let payload) = event else {
            done = true
            return
        }
        let chunk: StreamChunk
        do {
            chunk = try decoder.decode(StreamChunk.self, from: Data(payload.utf8))
        } catch {
            throw .malformedStream("not a completion chunk: \(payload.prefix(200))")
        }
        if let error = chunk.error { throw .streamError(error.message) }
        if let usage = chunk.usage { self.usage = usage }
        guard chunk.carriesText else { return }
        if let lastText { gaps.append(seconds - lastText) } else { firstText = seconds }
        lastText = seconds
    }

    /// The completed request, once the body ended `seconds` after the request was sent.
    public func finish(at seconds: Double) throws(RequestFailure) -> CompletedRequest {
        guard done else { throw .missingDone }
        guard let firstText else { throw .noText }
        guard let usage else { throw .missingUsage }
        return CompletedRequest(ttft: firstText, e2e: seconds, itl: gaps,
                                promptTokens: usage.promptTokens, outputTokens: usage.completionTokens)
    }
}
