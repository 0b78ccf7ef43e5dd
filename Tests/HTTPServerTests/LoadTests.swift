import Foundation
import Testing

/// 64 streamed greedy requests from 16 concurrent clients, 8 of which hang up in the middle
/// of one of their answers. The model's weights are bf16: with the exact numerics a token's
/// logits are the same bits in any batch (docs/NUMERICS.md), so even on the random tiny model,
/// whose top logits are often within 1e-3, every answer under load is the one it gets alone.
@Suite(.sharedServer(), .timeLimit(.minutes(3)))
struct ConcurrentLoad {
    /// One kind of request of the mix.
    struct Spec: Sendable, CustomStringConvertible {
        let endpoint: Endpoint
        let prompt: String
        let maxTokens: Int
        let ignoreEOS: Bool
        var description: String { "\(endpoint.rawValue) \(prompt.debugDescription) max_tokens \(maxTokens)" }

        func body(_ api: OpenAIConnection, maxTokens: Int? = nil, ignoreEOS: Bool? = nil) -> Data {
            OpenAIConnection.body(api.request(endpoint, prompt: prompt, [
                "max_tokens": maxTokens ?? self.maxTokens, "ignore_eos": ignoreEOS ?? self.ignoreEOS, "temperature": 0,
                "stream": true, "stream_options": ["include_usage": true],
            ]))
        }
    }

    static let specs: [Spec] = [
        Spec(endpoint: .completions, prompt: "Hello world", maxTokens: 12, ignoreEOS: true),
        Spec(endpoint: .chat, prompt: "What is the capital of France?", maxTokens: 16, ignoreEOS: false),
        Spec(endpoint: .completions, prompt: "Once upon a time, in a kingdom by the sea, there lived", maxTokens: 24, ignoreEOS: false),
        Spec(endpoint: .chat, prompt: "Hi", maxTokens: 20, ignoreEOS: true),
        Spec(endpoint: .completions, prompt: "1, 2, 3, 4, 5,", maxTokens: 18, ignoreEOS: true),
        Spec(endpoint: .chat, prompt: "Write a haiku about distributed systems and the messages they pass.", maxTokens: 24, ignoreEOS: true),
        Spec(endpoint: .completions, prompt: "def fibonacci(n):", maxTokens: 14, ignoreEOS: false),
        Spec(endpoint: .chat, prompt: "Summarize: the quick brown fox jumps over the lazy dog.", maxTokens: 22, ignoreEOS: false),
    ]
    static let clients = 16
    static let requestsPerClient = 4
    /// Clients below this number hang up during their second request.
    static let disconnectingClients = 8
    /// A hung-up request asks for this many tokens, so it is surely still generating when cut.
    static let disconnectedMaxTokens = 2000

    /// What a request got: the whole answer, or how far it got before its client hung up.
    enum Outcome: Sendable {
        case answered(spec: Int, EventStreamReply)
        case hungUp(eventsSeen: Int, endedBeforeHangUp: Bool)
    }

    @Test func everyClientGetsTheAnswerItGetsAlone() async throws {
        let api = try SharedServer.connection
        let cancelledBefore = try await api.metrics()["conclave_finished_sequences_total{reason=\"cancelled\"}"] ?? 0

        // Each kind of request alone, one at a time.
        var alone: [EventStreamReply] = []
        for spec in Self.specs {
            let reply = try await api.stream(spec.endpoint, body: spec.body(api))
            try #require(reply.status == 200 && reply.endsWithDoneOnce, "\(spec)\n\(reply)")
            alone.append(reply)
        }

        let outcomes = try await withThrowingTaskGroup(of: [Outcome].self) { group in
            for client in 0..<Self.clients {
                group.addTask { try await Self.runClient(client, api: api) }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(outcomes.count == Self.clients * Self.requestsPerClient)

        var answered = 0
        for case .answered(let index, let reply) in outcomes {
            answered += 1
            let spec = Self.specs[index], reference = alone[index]
            #expect(reply.status == 200, "\(spec)\n\(reply)")
            #expect(reply.endsWithDoneOnce, "\(spec): not exactly one [DONE], last\n\(reply)")
            #expect(reply.finishReasons.count == 1, "\(spec): not exactly one finish reason\n\(reply)")
            #expect(reply.text == reference.text, "\(spec): answered differently under load than alone")
            #expect(reply.finishReasons == reference.finishReasons, "\(spec)")
            #expect(reply.finalUsage == reference.finalUsage, "\(spec): usage \(reply.finalUsage.map(\.description) ?? "none")")
        }
        #expect(answered == Self.clients * Self.requestsPerClient - Self.disconnectingClients)
        for case .hungUp(let seen, let ended) in outcomes {
            #expect(seen >= 2 && !ended, "a hung-up request saw \(seen) events and ended before the hang-up: it was not cut mid-stream")
        }

        // The hung-up requests are cancelled and their cache freed; nothing runs or waits.
        let settled = await Self.metricsSettle(api, seconds: 10) { samples in
            samples["conclave_running_sequences"] == 0 && samples["conclave_waiting_sequences"] == 0
                && samples["conclave_cache_positions_used{attention_rank=\"0\"}"] == 0
                && (samples["conclave_finished_sequences_total{reason=\"cancelled\"}"] ?? 0) - cancelledBefore >= Double(Self.disconnectingClients)
        }
        let samples = try await api.metrics().filter { $0.key.contains("sequences") || $0.key.contains("cache_positions") || $0.key.contains("requests_total") }
        #expect(settled, "the server did not settle after the load: \(samples.sorted { $0.key < $1.key })")

        // And it still answers as before.
        let again = try await api.stream(Self.specs[0].endpoint, body: Self.specs[0].body(api))
        #expect(again.text == alone[0].text && again.endsWithDoneOnce, "\(again)")
    }

    /// One client's requests, one after the other; clients below `disconnectingClients` hang up
    /// during their second request after two events.
    static func runClient(_ client: Int, api: OpenAIConnection) async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for n in 0..<requestsPerClient {
            let index = (client * requestsPerClient + n) % specs.count
            let spec = specs[index]
            if client < disconnectingClients && n == 1 {
                let body = spec.body(api, maxTokens: disconnectedMaxTokens, ignoreEOS: true)
                let outcome = await HangingUpClient.stream(baseURL: api.baseURL, path: spec.endpoint.rawValue, body: body,
                                                           apiKey: api.apiKey, afterEvents: 2)
                outcomes.append(.hungUp(eventsSeen: outcome.eventsSeen, endedBeforeHangUp: outcome.endedBeforeHangUp))
            } else {
                outcomes.append(.answered(spec: index, try await api.stream(spec.endpoint, body: spec.body(api))))
            }
        }
        return outcomes
    }

    /// Polls /metrics until `condition` holds.
    static func metricsSettle(_ api: OpenAIConnection, seconds: Double, _ condition: ([String: Double]) -> Bool) async -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if let samples = try? await api.metrics(), condition(samples) { return true }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        return false
    }
}
