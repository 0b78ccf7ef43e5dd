import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT drain the server: it stops taking requests (503), lets running ones
/// finish for --drain-seconds, cuts the rest with finish_reason "abort" (their streams still
/// end properly), closes the listener and exits 0. Each test has a server of its own.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct GracefulShutdown {
    /// How long a drained server may take to exit after its last request ended.
    static let exitBound = 20.0

    /// A long stream outlives a one-second drain: it is cut with "abort", its stream still ends
    /// with the finish chunk, usage and `[DONE]`, and the process exits 0.
    @Test func drainCutsALongStreamWithAbort() async throws {
        try await TinyServer.run(options: ["--drain-seconds", "1"]) { server, model in
            let api = TinyServer.connection(server, model)
            try await api.waitUntilReady()
            // Generation would run to the end of the context: seconds on the tiny model.
            let maxTokens = try Conclave.contextLength(of: model) - 16
            var stream = try await api.open(.completions, api.request(.completions, prompt: "Hello", [
                "max_tokens": maxTokens, "ignore_eos": true, "temperature": 0, "stream": true, "stream_options": ["include_usage": true],
            ]))
            try #require(stream.status == 200)
            try #require(try await stream.next() != nil, "no first token")
            #expect(server.send(SIGTERM))

            let notReady = await Self.healthStopsAnswering200(api, seconds: 10)
            #expect(notReady, "GET /health still answered 200 after SIGTERM")
            let answer = try await stream.readToEnd()
            #expect(answer.endsWithDoneOnce, "\(answer)")
            #expect(answer.finishReasons == ["abort"], "\(answer)")
            let generated = try #require(answer.finalUsage?["completion_tokens"]?.int, "no usage chunk\n\(answer)")
            #expect(generated > 0 && generated < maxTokens, "\(generated) of \(maxTokens) tokens")

            let result = await server.finish(within: Self.exitBound)
            #expect(result.termination == .exited(0) && !result.timedOut, "\(result.report)")
            #expect(result.leftovers.isEmpty, "\(result.leftovers)")
            let after = try? await api.get("/health")
            #expect(after == nil, "the port still answers after the server exited: \(after.map(\.description) ?? "")")
        }
    }

    /// A request that fits in the drain finishes whole ("length", every token) while new
    /// requests get 503; then the process exits 0. For SIGTERM and SIGINT alike.
    @Test(arguments: [SIGTERM, SIGINT])
    func drainLetsARunningRequestFinish(signal: Int32) async throws {
        try await TinyServer.run(options: ["--drain-seconds", "60"]) { server, model in
            let api = TinyServer.connection(server, model)
            try await api.waitUntilReady()
            let maxTokens = 1500
            var stream = try await api.open(.chat, api.request(.chat, prompt: "Hello", [
                "max_tokens": maxTokens, "ignore_eos": true, "temperature": 0, "stream": true, "stream_options": ["include_usage": true],
            ]))
            try #require(stream.status == 200)
            _ = try await stream.next()
            try #require(try await stream.next() != nil, "no first token")
            #expect(server.send(signal))

            let draining = await Self.healthStopsAnswering200(api, seconds: 10)
            #expect(draining, "GET /health still answered 200 after signal \(signal)")
            let health = try await api.get("/health")
            #expect(health.status == 503 && health.json?["status"]?.string == "draining", "\(health)")
            let refused = try await api.post(.completions, api.request(.completions, prompt: "Hi", ["max_tokens": 2]))
            #expect(refused.status == 503, "a new request during the drain: \(refused)")
            #expect(refused.error?["type"]?.string == "server_error", "\(refused)")

            let answer = try await stream.readToEnd()
            #expect(answer.endsWithDoneOnce, "\(answer)")
            #expect(answer.finishReasons == ["length"], "the drain cut a request it had time to finish\n\(answer)")
            #expect(answer.finalUsage?["completion_tokens"]?.int == maxTokens, "\(answer)")

            let result = await server.finish(within: Self.exitBound)
            #expect(result.termination == .exited(0) && !result.timedOut, "\(result.report)")
            #expect(result.leftovers.isEmpty, "\(result.leftovers)")
        }
    }

    /// Polls GET /health until it answers anything but 200 (503, or no answer at all).
    static func healthStopsAnswering200(_ api: OpenAIConnection, seconds: Double) async -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            guard let reply = try? await api.get("/health"), reply.status == 200 else { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return false
    }
}
