import Foundation
import Hummingbird
import Metrics
import OpenAIAPI

/// `--api-key`: every `/v1/` route wants `Authorization: Bearer <key>`; health and
/// metrics stay open for probes and scrapers.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/v1/") else { return try await next(request, context) }
        guard let header = request.headers[.authorization] else { throw APIError.missingAPIKey }
        guard header == "Bearer \(key)" else { throw APIError.incorrectAPIKey }
        return try await next(request, context)
    }
}

/// Counts responses by status (`conclave_requests_total`) and answers Hummingbird's own
/// errors (no route, wrong method, unreadable body) in OpenAI's error shape.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let factory: MetricsFactory
    let maxBodyBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let failure: APIError
        do {
            let response = try await next(request, context)
            count(response.status.code)
            return response
        } catch let e as APIError {
            failure = e
        } catch let e as HTTPResponseError {
            failure = switch e.status {
            case .notFound: .notFound(path: request.uri.path)
            case .methodNotAllowed: .methodNotAllowed
            case .contentTooLarge: .payloadTooLarge(limit: maxBodyBytes)
            default: APIError(status: e.status.code, message: e.status.reasonPhrase, type: "invalid_request_error")
            }
        } catch {
            failure = .internalError("\(error)")
        }
        count(failure.status)
        throw OpenAIErrorResponse(error: failure)
    }

    private func count(_ status: Int) {
        Counter(label: "conclave_requests_total", dimensions: [("status", String(status))], factory: factory).increment()
    }
}

/// An `APIError` as Hummingbird sends it: the status, and OpenAI's error body.
struct OpenAIErrorResponse: HTTPResponseError {
    let error: APIError

    var status: HTTPResponse.Status { HTTPResponse.Status(code: error.status) }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        // A full queue clears within a few steps: ask clients to retry soon.
        if error.status == 429 { headers[.retryAfter] = "1" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: error.body)))
    }
}

extension Response {
    /// A JSON body in OpenAI's encoding.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(data: OpenAIJSON.encode(value))))
    }
}
