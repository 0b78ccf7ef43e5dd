import Foundation
import ServeBenchmark
import Testing

@Suite struct SummaryTests {
    let records = [
        RequestRecord(index: 0, sentAt: 0, outcome: .success(CompletedRequest(
            ttft: 0.1, e2e: 1.0, itl: [0.1, 0.2], promptTokens: 32, outputTokens: 10))),
        RequestRecord(index: 1, sentAt: 0, outcome: .success(CompletedRequest(
            ttft: 0.3, e2e: 2.3, itl: [0.3], promptTokens: 32, outputTokens: 21))),
        RequestRecord(index: 2, sentAt: 0.5, outcome: .failure(.httpStatus(429, message: "queue full"))),
        RequestRecord(index: 3, sentAt: 0.7, outcome: .success(CompletedRequest(
            ttft: 0.2, e2e: 0.2, itl: [], promptTokens: 32, outputTokens: 1))),
    ]

    @Test func throughputsCountSuccessfulRequestsOverTheDuration() {
        let summary = BenchmarkSummary(records: records, durationSeconds: 4)
        #expect(summary.successfulRequests == 3)
        #expect(summary.failedRequests == 1)
        #expect(summary.totalPromptTokens == 96)
        #expect(summary.totalOutputTokens == 32)
        #expect(summary.requestThroughput == 0.75)
        #expect(summary.outputTokenThroughput == 8)
        #expect(summary.totalTokenThroughput == 32)
    }

    @Test func latenciesOverSuccessfulRequests() throws {
        let summary = BenchmarkSummary(records: records, durationSeconds: 4)
        let ttft = try #require(summary.ttftMs)
        #expect(abs(ttft.mean - 200) < 1e-9 && abs(ttft.p50 - 200) < 1e-9)
        // TPOT: (1.0 − 0.1) / 9 = 100 ms and (2.3 − 0.3) / 20 = 100 ms; one-token request has none.
        let tpot = try #require(summary.tpotMs)
        #expect(abs(tpot.mean - 100) < 1e-9 && abs(tpot.p99 - 100) < 1e-9)
        // ITL pools every gap: 100, 200, 300 ms.
        let itl = try #require(summary.itlMs)
        #expect(abs(itl.mean - 200) < 1e-9 && abs(itl.p90 - 280) < 1e-9)
        let e2e = try #require(summary.e2eMs)
        #expect(abs(e2e.p50 - 1000) < 1e-9)
    }

    @Test func noSuccessesAndNoDurationGiveZerosNotNaN() {
        let summary = BenchmarkSummary(records: [records[2]], durationSeconds: 0)
        #expect(summary.requestThroughput == 0 && summary.totalTokenThroughput == 0)
        #expect(summary.ttftMs == nil && summary.e2eMs == nil)
    }

    @Test func reportTableAndJSON() throws {
        let settings = BenchmarkSettings(baseURL: "http://127.0.0.1:1", model: "tiny", rate: .perSecond(2), requests: 4,
                                         promptLength: 32, maxTokens: 16, apiKey: "secret")
        let report = BenchmarkReport(settings: settings, host: HostInfo(cpu: "Test CPU", cores: 2),
                                     summary: BenchmarkSummary(records: records, durationSeconds: 4), requests: records)
        let table = report.table()
        #expect(table.contains("| successful requests | 3 |"))
        #expect(table.contains("| request throughput (req/s) | 0.75 |"))
        #expect(table.contains("| TPOT p50 (ms) | 100.00 |"))
        #expect(table.contains("Test CPU"))
        #expect(report.failures().map { $0.message } == ["HTTP 429: queue full"])

        let json = try #require(try JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        let summary = try #require(json["summary"] as? [String: Any])
        #expect(summary["output_token_throughput"] as? Double == 8)
        let requests = try #require(json["requests"] as? [[String: Any]])
        #expect(requests.count == 4)
        #expect(requests[2]["error"] as? String == "HTTP 429: queue full")
        #expect(requests[0]["output_tokens"] as? Int == 10)
        #expect(!String(decoding: try report.json(), as: UTF8.self).contains("secret"))
    }
}
