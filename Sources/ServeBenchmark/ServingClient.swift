import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The benchmark's HTTP side: the server's model list, and streamed requests timed from the
/// send. Redirects are not followed, so requests reach only the server given.
struct ServingClient: Sendable {
    private let http: HTTPClient
    private let settings: BenchmarkSettings

    /// `connections`: how many requests may be in flight; the pool opens that many
    /// connections so none waits client-side (which would count as server latency).
    init(settings: BenchmarkSettings, connections: Int) {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(1, connections)
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        self.settings = settings
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    /// The first model `GET /v1/models` lists.
    func servedModel() async throws(BenchmarkError) -> String {
        struct ModelList: Decodable {
            struct Model: Decodable { var id: String }
            var data: [Model]
        }
        let url = settings.baseURL + "/v1/models"
        let reason: String
        do {
            let response = try await http.execute(request(url: url, method: .GET), timeout: timeout)
            let body = try await response.body.collect(upTo: 1 << 20)
            if response.status == .ok, let list = try? JSONDecoder().decode(ModelList.self, from: Data(body.readableBytesView)) {
                if let first = list.data.first { return first.id }
                reason = "it lists no model"
            } else {
                reason = "HTTP \(response.status.code): \(Self.message(in: Data(body.readableBytesView)))"
            }
        } catch {
            reason = "\(error)"
        }
        throw .modelListUnavailable(url: url, reason: reason)
    }

    /// Sends one streamed request and times its response; a request still running after
    /// `settings.timeout` is cancelled and fails.
    func send(_ body: Data) async -> Result<CompletedRequest, RequestFailure> {
        let seconds = settings.timeout
        return await withTaskGroup(of: Result<CompletedRequest, RequestFailure>.self) { group in
            group.addTask { await stream(body) }
            group.addTask {
                try? await Task.sleep(for: .seconds(seconds))
                return .failure(.timeout(seconds: seconds))
            }
            // Whichever ends first decides; cancelling the other ends its request or its timer.
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }

    private func stream(_ body: Data) async -> Result<CompletedRequest, RequestFailure> {
        var request = request(url: settings.baseURL + settings.endpoint.path, method: .POST)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(body)
        let sent = ContinuousClock.now
        do {
            let response = try await http.execute(request, timeout: timeout)
            guard response.status == .ok else {
                let text = try await response.body.collect(upTo: 1 << 20)
                return .failure(.httpStatus(Int(response.status.code), message: Self.message(in: Data(text.readableBytesView))))
            }
            var parser = ServerSentEventParser()
            var measurement = StreamMeasurement()
            for try await bytes in response.body {
                let arrived = (ContinuousClock.now - sent).seconds
                for event in parser.feed(bytes.readableBytesView) {
                    try measurement.observe(event, at: arrived)
                }
            }
            return .success(try measurement.finish(at: (ContinuousClock.now - sent).seconds))
        } catch let failure as RequestFailure {
            return .failure(failure)
        } catch {
            return .failure(.transport("\(error)"))
        }
    }

    private var timeout: TimeAmount {
        .nanoseconds(Int64(settings.timeout * 1e9))
    }

    private func request(url: String, method: HTTPMethod) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let apiKey = settings.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        return request
    }

    /// An error body's OpenAI `error.message`, or its text when it has none.
    private static func message(in body: Data) -> String {
        struct ErrorResponse: Decodable {
            struct Body: Decodable { var message: String }
            var error: Body
        }
        if let response = try? JSONDecoder().decode(ErrorResponse.self, from: body) { return response.error.message }
        let text = String(decoding: body.prefix(300), as: UTF8.self)
        return text.isEmpty ? "(empty body)" : text
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
