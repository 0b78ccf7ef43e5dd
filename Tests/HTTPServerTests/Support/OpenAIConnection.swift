import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ServeBenchmark
import TestSupport
import Testing

/// The two generation endpoints and where each puts its text.
enum Endpoint: String, Sendable, CaseIterable {
    case completions = "/v1/completions"
    case chat = "/v1/chat/completions"

    /// The text of a choice: a completion's `text`, a chat message's `content`, or a streamed
    /// chunk's delta of either.
    func text(of choice: JSON) -> String? {
        switch self {
        case .completions: choice["text"]?.string
        case .chat: (choice["message"] ?? choice["delta"])?["content"]?.string
        }
    }
}

/// A whole HTTP answer.
struct HTTPReply: Sendable, CustomStringConvertible {
    let status: Int
    let headers: [String: String]
    let body: Data
    var json: JSON? { JSON.parse(body) }
    var text: String { String(decoding: body, as: UTF8.self) }

    /// The OpenAI error object of an error answer.
    var error: JSON? { json?["error"] }

    var description: String { "HTTP \(status): \(text.prefix(2000))" }
}

/// A whole server-sent-event answer: every `data:` payload in order, `[DONE]` included.
struct EventStreamReply: Sendable, CustomStringConvertible {
    let status: Int
    /// Lowercased names.
    let headers: [String: String]
    let endpoint: Endpoint
    let events: [String]
    /// The whole body as received (an error answer is JSON, not events).
    let body: String

    /// The OpenAI error object of an error answer.
    var error: JSON? { JSON.parse(Data(body.utf8))?["error"] }

    /// The payloads before `[DONE]`, parsed (nil entries for payloads that are not JSON).
    var chunks: [JSON?] { events.filter { $0 != "[DONE]" }.map { JSON.parse(Data($0.utf8)) } }

    /// `[DONE]` is the last event and there is exactly one.
    var endsWithDoneOnce: Bool { events.last == "[DONE]" && events.filter { $0 == "[DONE]" }.count == 1 }

    /// The chunks' text deltas concatenated.
    var text: String {
        chunks.compactMap { $0?["choices"]?[0] }.compactMap(endpoint.text(of:)).joined()
    }

    /// Every non-null `finish_reason`, in order.
    var finishReasons: [String] {
        chunks.compactMap { $0?["choices"]?[0]?["finish_reason"]?.string }
    }

    /// The usage of the final usage chunk (`choices: []`), when there is one.
    var finalUsage: JSON? {
        guard let last = chunks.last, let last, last["choices"]?.array?.isEmpty == true else { return nil }
        return last["usage"]
    }

    var description: String { "HTTP \(status), \(events.count) events:\n" + String(body.prefix(4000)) }
}

/// A streamed answer read event by event, for tests that act while it runs.
struct OpenEventStream {
    let status: Int
    let headers: [String: String]
    let endpoint: Endpoint
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var parser = ServerSentEventParser()
    private var ready: [String] = []
    private var received: [UInt8] = []
    /// Every payload returned so far.
    private(set) var events: [String] = []

    init(response: HTTPClientResponse, endpoint: Endpoint) {
        status = Int(response.status.code)
        headers = Dictionary(response.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        self.endpoint = endpoint
        iterator = response.body.makeAsyncIterator()
    }

    /// The next `data:` payload, or nil at the end of the body.
    mutating func next() async throws -> String? {
        while ready.isEmpty {
            guard let buffer = try await iterator.next() else { return nil }
            received.append(contentsOf: buffer.readableBytesView)
            ready = parser.feed(buffer.readableBytesView).map { event in
                switch event {
                case .data(let payload): payload
                case .done: "[DONE]"
                }
            }
        }
        let event = ready.removeFirst()
        events.append(event)
        return event
    }

    /// Reads to the end of the body and returns the whole answer.
    mutating func readToEnd() async throws -> EventStreamReply {
        while try await next() != nil {}
        return EventStreamReply(status: status, headers: headers, endpoint: endpoint, events: events,
                                body: String(decoding: received, as: UTF8.self))
    }
}

/// One server as an OpenAI client sees it: JSON requests and event streams over loopback HTTP,
/// each with a hard deadline.
struct OpenAIConnection: Sendable {
    let baseURL: String
    /// The name the server answers to.
    let model: String
    /// The served model's directory (for its tokenizer and config).
    let modelDirectory: URL
    var apiKey: String?
    /// Every request's deadline, body included.
    var timeout: TimeAmount = .seconds(60)

    /// One client for the whole test process; enough connections per host for the load test's
    /// concurrent clients (AsyncHTTPClient's default of 8 would queue them in the client).
    static let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                                 configuration: .init(connectionPool: .init(idleTimeout: .seconds(30),
                                                                            concurrentHTTP1ConnectionsPerHostSoftLimit: 64)))

    init(baseURL: String, model: String, modelDirectory: URL, apiKey: String? = nil) {
        self.baseURL = baseURL
        self.model = model
        self.modelDirectory = modelDirectory
        self.apiKey = apiKey
    }

    /// A JSON body from a literal.
    static func body(_ object: [String: Any]) -> Data {
        try! JSONSerialization.data(withJSONObject: object)
    }

    private func request(_ path: String, method: HTTPMethod, body: Data?, headers: [String: String]) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return request
    }

    private func whole(_ request: HTTPClientRequest) async throws -> HTTPReply {
        let response = try await Self.http.execute(request, timeout: timeout)
        let body = try await response.body.collect(upTo: 64 << 20)
        let headers = Dictionary(response.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        return HTTPReply(status: Int(response.status.code), headers: headers, body: Data(body.readableBytesView))
    }

    func get(_ path: String) async throws -> HTTPReply {
        try await whole(request(path, method: .GET, body: nil, headers: [:]))
    }

    func post(_ path: String, body: Data, headers: [String: String] = [:]) async throws -> HTTPReply {
        try await whole(request(path, method: .POST, body: body, headers: headers))
    }

    func post(_ endpoint: Endpoint, _ object: [String: Any], headers: [String: String] = [:]) async throws -> HTTPReply {
        try await post(endpoint.rawValue, body: Self.body(object), headers: headers)
    }

    /// Starts a request and returns its answer for reading event by event.
    func open(_ endpoint: Endpoint, body: Data) async throws -> OpenEventStream {
        let response = try await Self.http.execute(request(endpoint.rawValue, method: .POST, body: body, headers: [:]), timeout: timeout)
        return OpenEventStream(response: response, endpoint: endpoint)
    }

    func open(_ endpoint: Endpoint, _ object: [String: Any]) async throws -> OpenEventStream {
        try await open(endpoint, body: Self.body(object))
    }

    /// A streamed request read to its end.
    func stream(_ endpoint: Endpoint, body: Data) async throws -> EventStreamReply {
        var stream = try await open(endpoint, body: body)
        return try await stream.readToEnd()
    }

    func stream(_ endpoint: Endpoint, _ object: [String: Any]) async throws -> EventStreamReply {
        try await stream(endpoint, body: Self.body(object))
    }

    /// A request's fields with the model and, for chat, `prompt` turned into one user message.
    func request(_ endpoint: Endpoint, prompt: String, _ fields: [String: Any] = [:]) -> [String: Any] {
        var object = fields
        object["model"] = model
        switch endpoint {
        case .completions: object["prompt"] = prompt
        case .chat: object["messages"] = [["role": "user", "content": prompt]]
        }
        return object
    }

    /// The server never became ready.
    struct NotReady: Error, CustomStringConvertible {
        let description: String
    }

    /// Polls GET /health until it answers 200 (a cluster answers 503 while its ranks load).
    func waitUntilReady(timeout seconds: Double = 90) async throws {
        let end = Date().addingTimeInterval(seconds)
        var last = "no answer"
        while Date() < end {
            if let reply = try? await get("/health") {
                if reply.status == 200 { return }
                last = reply.description
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw NotReady(description: "GET \(baseURL)/health did not answer 200 within \(seconds) s (last: \(last))")
    }

    /// The Prometheus samples of GET /metrics: "name{labels}" → value.
    func metrics() async throws -> [String: Double] {
        let reply = try await get("/metrics")
        var samples: [String: Double] = [:]
        for line in reply.text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    /// Token ids of `text` from the model's own tokenizer (`conclave tokenize`).
    func tokenize(_ text: String, addBOS: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Int] {
        let result = try Conclave.local(["tokenize", "--model", modelDirectory.path, "--text", text] + (addBOS ? ["--add-bos"] : []),
                                        sourceLocation: sourceLocation)
        try #require(result.succeeded, "conclave tokenize failed\n\(result.report)", sourceLocation: sourceLocation)
        let json = try #require(JSON.parse(Data(result.stdout.utf8)), "not JSON: \(result.stdout)", sourceLocation: sourceLocation)
        return try #require(json["ids"]?.ints, "no ids in \(result.stdout)", sourceLocation: sourceLocation)
    }
}
