import Foundation
import TestSupport
import Testing

/// The error suite's server: a key, small bodies, one running sequence and a queue of one.
enum ErrorServer {
    static let key = "sk-conclave-test"
    static let maxBodyBytes = 65536
    static let options = ["--api-key", key, "--max-body-bytes", "\(maxBodyBytes)", "--max-num-seqs", "1", "--max-queue", "1"]
}

/// Every error status the server answers, each with OpenAI's error body, on one server that
/// wants an API key, takes small bodies and runs one sequence with a queue of one; and a
/// streamed answer that runs while all of them happen comes out whole.
@Suite(.serialized, .sharedServer(ErrorServer.options, apiKey: ErrorServer.key), .timeLimit(.minutes(2)))
struct ErrorResponses {

    /// An expected error answer.
    struct Expected: Sendable, CustomStringConvertible {
        let status: Int
        var param: String?
        var code: String?
        var type = "invalid_request_error"
        var description: String { "\(status) \(type) param=\(param ?? "null") code=\(code ?? "null")" }
    }

    /// One bad request and what the server must answer.
    struct Case: Sendable, CustomStringConvertible {
        let name: String
        let endpoint: Endpoint
        let body: Data
        var headers: [String: String] = [:]
        /// Send without the suite's API key.
        var withoutKey = false
        let expected: Expected
        var description: String { name }
    }

    /// The bad requests, built for the suite's server.
    static func cases(_ api: OpenAIConnection) throws -> [Case] {
        let context = try Conclave.contextLength(of: api.modelDirectory)
        func json(_ object: [String: Any]) -> Data { OpenAIConnection.body(object) }
        let model = api.model
        return [
            Case(name: "malformed JSON", endpoint: .completions, body: Data(#"{"model": "\#(model)", "prompt": "#.utf8),
                 expected: Expected(status: 400)),
            Case(name: "max_tokens of the wrong type", endpoint: .completions,
                 body: json(["model": model, "prompt": "Hi", "max_tokens": "ten"]),
                 expected: Expected(status: 400, param: "max_tokens", code: "invalid_type")),
            Case(name: "message content of the wrong type", endpoint: .chat,
                 body: json(["model": model, "messages": [["role": "user", "content": 5]]]),
                 expected: Expected(status: 400, param: "messages[0].content", code: "invalid_type")),
            Case(name: "unknown model", endpoint: .chat,
                 body: json(["model": "gpt-4o", "messages": [["role": "user", "content": "Hi"]]]),
                 expected: Expected(status: 404, param: "model", code: "model_not_found")),
            Case(name: "max_tokens 0", endpoint: .completions, body: json(["model": model, "prompt": "Hi", "max_tokens": 0]),
                 expected: Expected(status: 400, param: "max_tokens")),
            Case(name: "chat max_tokens 0", endpoint: .chat,
                 body: json(["model": model, "messages": [["role": "user", "content": "Hi"]], "max_tokens": 0]),
                 expected: Expected(status: 400, param: "max_tokens")),
            Case(name: "prompt as long as the context", endpoint: .completions,
                 body: json(["model": model, "prompt": Array(repeating: 5, count: context), "max_tokens": 1]),
                 expected: Expected(status: 400, param: "prompt", code: "context_length_exceeded")),
            Case(name: "prompt plus max_tokens longer than the context", endpoint: .completions,
                 body: json(["model": model, "prompt": Array(repeating: 5, count: context - 10), "max_tokens": 11]),
                 expected: Expected(status: 400, param: "prompt", code: "context_length_exceeded")),
            Case(name: "no API key", endpoint: .completions, body: json(["model": model, "prompt": "Hi", "max_tokens": 1]),
                 withoutKey: true, expected: Expected(status: 401)),
            Case(name: "wrong API key", endpoint: .completions, body: json(["model": model, "prompt": "Hi", "max_tokens": 1]),
                 headers: ["Authorization": "Bearer sk-wrong"], withoutKey: true,
                 expected: Expected(status: 401, code: "invalid_api_key")),
            Case(name: "body over --max-body-bytes", endpoint: .completions,
                 body: json(["model": model, "prompt": String(repeating: "a", count: ErrorServer.maxBodyBytes), "max_tokens": 1]),
                 expected: Expected(status: 413)),
        ]
    }

    /// Sends `c` and checks the status and the error body (all four keys present).
    static func check(_ c: Case, api: OpenAIConnection, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var connection = api
        if c.withoutKey { connection.apiKey = nil }
        let reply = try await connection.post(c.endpoint.rawValue, body: c.body, headers: c.headers)
        #expect(reply.status == c.expected.status, "\(c.name): expected \(c.expected)\n\(reply)", sourceLocation: sourceLocation)
        let error = reply.error?.object
        #expect(error != nil, "\(c.name): no OpenAI error body\n\(reply)", sourceLocation: sourceLocation)
        guard let error else { return }
        #expect(Set(error.keys) == ["message", "type", "param", "code"], "\(c.name): \(reply)", sourceLocation: sourceLocation)
        #expect(error["message"]?.string?.isEmpty == false, "\(c.name): \(reply)", sourceLocation: sourceLocation)
        #expect(error["type"]?.string == c.expected.type, "\(c.name): \(reply)", sourceLocation: sourceLocation)
        #expect(error["param"]?.string == c.expected.param, "\(c.name): param\n\(reply)", sourceLocation: sourceLocation)
        #expect(error["code"]?.string == c.expected.code, "\(c.name): code\n\(reply)", sourceLocation: sourceLocation)
    }

    @Test func eachBadRequestGetsItsErrorStatusAndBody() async throws {
        let api = try SharedServer.connection
        for c in try Self.cases(api) {
            try await Self.check(c, api: api)
        }
    }

    /// With the right key a request is served; health and metrics need no key.
    @Test func rightKeyIsServedAndProbesNeedNoKey() async throws {
        var api = try SharedServer.connection
        let reply = try await api.post(.completions, api.request(.completions, prompt: "Hi", ["max_tokens": 2, "ignore_eos": true]))
        #expect(reply.status == 200, "\(reply)")
        #expect(reply.json?["usage"]?["completion_tokens"]?.int == 2, "\(reply)")
        let models = try await api.get("/v1/models")
        #expect(models.status == 200, "\(models)")
        api.apiKey = nil
        #expect(try await api.get("/v1/models").status == 401)
        #expect(try await api.get("/health").status == 200)
        #expect(try await api.get("/metrics").status == 200)
    }

    /// Several long requests at once against one running sequence and a queue of one: one
    /// runs, one waits, the rest get 429 with Retry-After; the accepted ones complete.
    @Test func fullQueueAnswers429WithRetryAfter() async throws {
        let api = try SharedServer.connection
        let maxTokens = 400
        let body = OpenAIConnection.body(api.request(.completions, prompt: "Once upon a time",
                                                     ["max_tokens": maxTokens, "ignore_eos": true, "stream": true, "temperature": 0]))
        let replies = try await withThrowingTaskGroup(of: EventStreamReply.self) { group in
            for _ in 0..<5 { group.addTask { try await api.stream(.completions, body: body) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let rejected = replies.filter { $0.status == 429 }
        let accepted = replies.filter { $0.status == 200 }
        #expect(rejected.count >= 1, "no 429 among \(replies.map(\.status))")
        #expect(accepted.count >= 1 && accepted.count + rejected.count == replies.count, "\(replies.map(\.status))")
        for reply in rejected {
            let retryAfter = reply.headers["retry-after"].flatMap { Int($0) }
            #expect(retryAfter.map { $0 >= 0 } == true, "429 without a Retry-After in seconds: \(reply.headers)")
            #expect(reply.error?["type"]?.string == "rate_limit_error", "\(reply)")
        }
        for reply in accepted {
            #expect(reply.endsWithDoneOnce && reply.finishReasons == ["length"], "\(reply)")
        }
        let texts = Set(accepted.map(\.text))
        #expect(texts.count == 1, "the same greedy request answered differently")
    }

    /// A greedy stream keeps running, undisturbed, while every bad request is answered and a
    /// full queue refuses one: it ends with all its tokens and the text it has alone.
    @Test func errorsLeaveARunningStreamIntact() async throws {
        let api = try SharedServer.connection
        let maxTokens = 2000
        let fields = api.request(.chat, prompt: "Tell me a long story",
                                 ["max_tokens": maxTokens, "ignore_eos": true, "temperature": 0])
        let countsBefore = try await api.metrics()

        var stream = try await api.open(.chat, fields.merging(["stream": true, "stream_options": ["include_usage": true]]) { $1 })
        try #require(stream.status == 200)
        // Two events: the role chunk, then the first token; the sequence is running now.
        _ = try await stream.next()
        _ = try await stream.next()

        // The running stream holds the only sequence: one request may wait, the next is refused.
        // (First, while the stream surely still runs; then every bad request.)
        async let queued = api.post(.completions, api.request(.completions, prompt: "Hi", ["max_tokens": 3, "ignore_eos": true]))
        let waiting = await Self.waitForMetric(api, "conclave_waiting_sequences", atLeast: 1, seconds: 10)
        #expect(waiting, "the second request never showed as waiting")
        let refused = try await api.post(.completions, api.request(.completions, prompt: "Hi", ["max_tokens": 3]))
        #expect(refused.status == 429, "\(refused)")
        #expect(refused.headers["retry-after"] != nil, "\(refused.headers)")
        let cases = try Self.cases(api)
        for c in cases { try await Self.check(c, api: api) }

        let answer = try await stream.readToEnd()
        #expect(answer.endsWithDoneOnce, "\(answer)")
        #expect(answer.finishReasons == ["length"], "\(answer)")
        #expect(answer.finalUsage?["completion_tokens"]?.int == maxTokens, "\(answer)")
        let queuedReply = try await queued
        #expect(queuedReply.status == 200, "the queued request: \(queuedReply)")

        let alone = try await api.post(.chat, fields)
        #expect(answer.text == alone.json?["choices"]?[0].flatMap(Endpoint.chat.text(of:)), "the stream's text differs from the same request alone")

        // Every error is counted by status.
        let countsAfter = try await api.metrics()
        for (status, count) in Dictionary(grouping: cases, by: \.expected.status).mapValues(\.count).merging([429: 1], uniquingKeysWith: +) {
            let label = "conclave_requests_total{status=\"\(status)\"}"
            let added = (countsAfter[label] ?? 0) - (countsBefore[label] ?? 0)
            #expect(added >= Double(count), "\(label) grew by \(added), expected at least \(count)")
        }
    }

    /// Polls /metrics until `name` is at least `value`.
    static func waitForMetric(_ api: OpenAIConnection, _ name: String, atLeast value: Double, seconds: Double) async -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if let samples = try? await api.metrics(), let v = samples[name], v >= value { return true }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return false
    }
}
