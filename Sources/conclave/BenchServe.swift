import ArgumentParser
import Dispatch
import Foundation
import ServeBenchmark

struct BenchServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-serve",
        abstract: "Load-test an OpenAI-compatible server and report TTFT, TPOT, ITL, latency and throughput, as vLLM's benchmark_serving does.",
        discussion: """
            Sends --requests streamed, greedy requests with random token-id prompts, each generating exactly \
            --max-tokens tokens (ignore_eos), at Poisson-distributed times (--rate) or all at once. A request \
            that gets an HTTP error, a malformed stream, no [DONE] or no answer within --timeout counts as \
            failed. The table goes to standard output; failures are listed on standard error. Exits non-zero \
            when no request succeeded.
            """)

    @Option(help: "The server's base URL, e.g. http://127.0.0.1:8000; requests go only here.")
    var url: String

    @Option(help: "Model name to request (default: the first one GET /v1/models lists).")
    var model: String?

    @Option(help: "Requests per second, arriving as a Poisson process; 'inf' sends them all at once.")
    var rate: RequestRate = .unlimited

    @Option(help: "How many requests to measure.")
    var requests = 100

    @Option(name: .customLong("prompt-len"), help: "Prompt tokens per request: random ids in 100..<1000, different for every request.")
    var promptLength = 128

    @Option(name: .customLong("max-tokens"), help: "Tokens each request generates.")
    var maxTokens = 64

    @Option(help: "Most requests in flight (default: all --requests when --rate is inf, no limit otherwise).")
    var concurrency: Int?

    @Option(help: "completions (POST /v1/completions with token-id prompts) or chat (POST /v1/chat/completions, the ids written as text).")
    var endpoint: Endpoint = .completions

    @Option(name: .customLong("api-key"), help: "Sent as 'Authorization: Bearer <key>'.")
    var apiKey: String?

    @Option(help: "Seed of the prompts and arrival times: the same seed sends the same load.")
    var seed: UInt64 = 0

    @Option(help: "Requests sent and awaited before the measured ones, not measured; if one fails, the benchmark stops.")
    var warmup = 1

    @Option(help: "Seconds a request may take from its send to [DONE] before it counts as failed.")
    var timeout = 300.0

    @Option(help: "Also write the settings, summary and every request's record as JSON to this file.")
    var json: String?

    func validate() throws {
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme), parsed.host != nil else {
            throw ValidationError("--url must look like http://host:port (got '\(url)')")
        }
        guard requests >= 1 else { throw ValidationError("--requests must be ≥ 1") }
        guard promptLength >= 1 else { throw ValidationError("--prompt-len must be ≥ 1") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1") }
        if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be ≥ 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be ≥ 0") }
        guard timeout > 0 else { throw ValidationError("--timeout must be > 0 seconds") }
    }

    func run() throws {
        let settings = BenchmarkSettings(
            baseURL: url.hasSuffix("/") ? String(url.dropLast()) : url, model: model, endpoint: endpoint, rate: rate,
            requests: requests, promptLength: promptLength, maxTokens: maxTokens, concurrency: concurrency,
            apiKey: apiKey, seed: seed, warmup: warmup, timeout: timeout)
        log.info("sending \(warmup) warm-up and \(requests) measured requests to \(settings.baseURL)")
        let report = try waitFor { try await BenchmarkRun.run(settings) }
        emit(report.table())
        for (message, count) in report.failures() { log.warning("\(count) request(s) failed: \(message)") }
        if let json { try report.json().write(to: URL(fileURLWithPath: json)) }
        if report.summary.successfulRequests == 0, let first = report.requests.first?.failure {
            throw BenchmarkError.allRequestsFailed(count: report.requests.count, first: first)
        }
    }
}

extension RequestRate: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(parsing: argument)
    }
}

extension Endpoint: ExpressibleByArgument {}

/// Runs async work from a synchronous `run()`: the root command is synchronous, and
/// ArgumentParser runs async subcommands only under an async root.
private func waitFor<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = Outcome<T>()
    let finished = DispatchSemaphore(value: 0)
    Task.detached {
        do { outcome.result = .success(try await work()) } catch { outcome.result = .failure(error) }
        finished.signal()
    }
    finished.wait()
    return try outcome.result!.get()
}

/// Carries the result to the waiting thread; the semaphore orders the write before the read.
private final class Outcome<T: Sendable>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
