/// What vLLM's serving benchmark reports, from the records of one run.
public struct BenchmarkSummary: Encodable, Equatable, Sendable {
    public var successfulRequests: Int
    public var failedRequests: Int
    /// From the first send to the last response's end.
    public var durationSeconds: Double
    public var totalPromptTokens: Int
    public var totalOutputTokens: Int
    /// Successful requests per second.
    public var requestThroughput: Double
    public var outputTokenThroughput: Double
    /// Prompt and output tokens per second.
    public var totalTokenThroughput: Double
    public var ttftMs: LatencyStats?
    public var tpotMs: LatencyStats?
    public var itlMs: LatencyStats?
    public var e2eMs: LatencyStats?

    public init(records: [RequestRecord], durationSeconds: Double) {
        let completed = records.compactMap(\.completed)
        successfulRequests = completed.count
        failedRequests = records.count - completed.count
        self.durationSeconds = durationSeconds
        totalPromptTokens = completed.reduce(0) { $0 + $1.promptTokens }
        totalOutputTokens = completed.reduce(0) { $0 + $1.outputTokens }
        let perSecond = durationSeconds > 0 ? 1 / durationSeconds : 0
        requestThroughput = Double(successfulRequests) * perSecond
        outputTokenThroughput = Double(totalOutputTokens) * perSecond
        totalTokenThroughput = Double(totalPromptTokens + totalOutputTokens) * perSecond
        ttftMs = LatencyStats(seconds: completed.map(\.ttft))
        tpotMs = LatencyStats(seconds: completed.compactMap(\.tpot))
        itlMs = LatencyStats(seconds: completed.flatMap(\.itl))
        e2eMs = LatencyStats(seconds: completed.map(\.e2e))
    }
}
