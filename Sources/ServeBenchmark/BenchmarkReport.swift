import Foundation

/// Everything a run measured: the settings, the machine, the summary and every request.
public struct BenchmarkReport: Encodable, Sendable {
    public var settings: BenchmarkSettings
    public var host: HostInfo
    public var summary: BenchmarkSummary
    public var requests: [RequestRecord]

    public init(settings: BenchmarkSettings, host: HostInfo, summary: BenchmarkSummary, requests: [RequestRecord]) {
        self.settings = settings
        self.host = host
        self.summary = summary
        self.requests = requests
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return try encoder.encode(self)
    }

    /// The settings and the machine, then one table in vLLM's terms.
    public func table() -> String {
        let s = settings
        let concurrency = s.concurrencyLimit.map(String.init) ?? "unlimited"
        var lines = [
            "bench-serve \(s.baseURL)\(s.endpoint.path)  model \(s.model ?? "?")",
            "requests \(s.requests) (+\(s.warmup) warm-up)  rate \(s.rate) req/s  concurrency \(concurrency)  "
                + "prompt \(s.promptLength) tokens  max tokens \(s.maxTokens)  seed \(s.seed)  timeout \(s.timeout) s",
            "CPU \(host.cpu) (\(host.cores) cores)",
            "",
            "| metric | value |",
            "|---|---:|",
        ]
        func row(_ name: String, _ value: String) { lines.append("| \(name) | \(value) |") }
        let m = summary
        row("successful requests", "\(m.successfulRequests)")
        row("failed requests", "\(m.failedRequests)")
        row("benchmark duration (s)", format(m.durationSeconds))
        row("total input tokens", "\(m.totalPromptTokens)")
        row("total output tokens", "\(m.totalOutputTokens)")
        row("request throughput (req/s)", format(m.requestThroughput))
        row("output token throughput (tok/s)", format(m.outputTokenThroughput))
        row("total token throughput (tok/s)", format(m.totalTokenThroughput))
        for (name, stats) in [("TTFT", m.ttftMs), ("TPOT", m.tpotMs), ("ITL", m.itlMs), ("E2E", m.e2eMs)] {
            row("\(name) mean (ms)", stats.map { format($0.mean) } ?? "-")
            row("\(name) p50 (ms)", stats.map { format($0.p50) } ?? "-")
            row("\(name) p90 (ms)", stats.map { format($0.p90) } ?? "-")
            row("\(name) p99 (ms)", stats.map { format($0.p99) } ?? "-")
        }
        return lines.joined(separator: "\n")
    }

    /// Each distinct failure with how many requests it ended, most frequent first.
    public func failures() -> [(message: String, count: Int)] {
        let counts = Dictionary(requests.compactMap { $0.failure?.description }.map { ($0, 1) }, uniquingKeysWith: +)
        return counts.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { (message: $0.key, count: $0.value) }
    }

    private func format(_ value: Double) -> String {
        String(format: "%.2f", value)
    }
}

extension BenchmarkSettings: Encodable {
    enum CodingKeys: String, CodingKey {
        case url, model, endpoint, requestRate = "request_rate", requests, promptLength = "prompt_len"
        case maxTokens = "max_tokens", concurrency, seed, warmup, timeout = "timeout_s"
    }

    /// The API key stays out of reports.
    public func encode(to encoder: any Encoder) throws {
        var fields = encoder.container(keyedBy: CodingKeys.self)
        try fields.encode(baseURL, forKey: .url)
        try fields.encode(model, forKey: .model)
        try fields.encode(endpoint, forKey: .endpoint)
        switch rate {
        case .unlimited: try fields.encode("inf", forKey: .requestRate)
        case .perSecond(let perSecond): try fields.encode(perSecond, forKey: .requestRate)
        }
        try fields.encode(requests, forKey: .requests)
        try fields.encode(promptLength, forKey: .promptLength)
        try fields.encode(maxTokens, forKey: .maxTokens)
        // null: no limit.
        try fields.encode(concurrencyLimit, forKey: .concurrency)
        try fields.encode(seed, forKey: .seed)
        try fields.encode(warmup, forKey: .warmup)
        try fields.encode(timeout, forKey: .timeout)
    }
}
