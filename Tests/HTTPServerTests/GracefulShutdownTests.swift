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

    /// `--record-expert-load`: after a drain the file covers every token the server ran — per
    /// MoE layer, (prompt + completion − 1) × top-k routed tokens — and names the model.
    @Test func drainWritesTheRecordedExpertLoad() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("serve-load-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("load.json")
        try await TinyServer.run(options: ["--drain-seconds", "5", "--record-expert-load", file.path]) { server, model in
            let api = TinyServer.connection(server, model)
            try await api.waitUntilReady()
            let reply = try await api.post(.completions, api.request(.completions, prompt: "Hello there", [
                "max_tokens": 5, "ignore_eos": true, "temperature": 0,
            ]))
            try #require(reply.status == 200, "\(reply)")
            let prompt = try #require(reply.json?["usage"]?["prompt_tokens"]?.int)
            let completion = try #require(reply.json?["usage"]?["completion_tokens"]?.int)
            #expect(completion == 5)
            #expect(server.send(SIGTERM))
            let result = await server.finish(within: Self.exitBound)
            #expect(result.termination == .exited(0) && !result.timedOut, "\(result.report)")

            let record = try #require(JSON.parse(try Data(contentsOf: file)), "\(file.path) is not JSON")
            #expect(record["format"]?.string == "conclave-expert-load/1")
            #expect(record["model_fingerprint"]?.string?.isEmpty == false)
            #expect(record["window"]?["tokens"]?.int == prompt + completion - 1, "\(record)")
            guard case .array(let layers) = record["layers"] else { Issue.record("no layers in \(record)"); return }
            // The tiny preset: layer 0 dense, layers 1-3 MoE with top-4 of 16 experts.
            #expect(layers.compactMap { $0["layer"]?.int } == [1, 2, 3])
            for layer in layers {
                guard case .array(let counts) = layer["tokens_per_expert"] else { Issue.record("no counts in \(layer)"); continue }
                #expect(counts.count == 16)
                #expect(counts.compactMap(\.int).reduce(0, +) == (prompt + completion - 1) * 4, "\(layer)")
            }
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
