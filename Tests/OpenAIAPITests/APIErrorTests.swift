import Foundation
import OpenAIAPI
import XCTest

final class APIErrorTests: XCTestCase {
    func testBodyCarriesNullParamAndCode() {
        let error = APIError.invalidRequest("Bad.")
        XCTAssertEqual(canonical(parse(error.body)), canonical([
            "error": ["message": "Bad.", "type": "invalid_request_error", "param": NSNull(), "code": NSNull()],
        ]))
    }

    func testBodyCarriesParamAndCode() {
        let error = APIError.modelNotFound("gpt-4")
        XCTAssertEqual(error.status, 404)
        XCTAssertEqual(canonical(parse(error.body)), canonical([
            "error": ["message": "The model 'gpt-4' does not exist.", "type": "invalid_request_error",
                      "param": "model", "code": "model_not_found"],
        ]))
    }

    func testDecodingErrorsCarryTheirParamInTheBody() {
        let error = validationError { () throws(APIError) in
            try ValidatedRequest.completion(from: body(["model": "m", "prompt": "p", "max_tokens": "x"]))
        }
        let fields = (parse(error?.body ?? Data()) as? [String: Any])?["error"] as? [String: Any]
        XCTAssertEqual(fields?["param"] as? String, "max_tokens")
        XCTAssertEqual(fields?["code"] as? String, "invalid_type")
    }

    func testContextLengthExceeded() {
        let chat = APIError.contextLengthExceeded(promptTokens: 100, maxTokens: 50, contextLength: 128)
        XCTAssertEqual(chat.status, 400)
        XCTAssertEqual(chat.param, "messages")
        XCTAssertEqual(chat.code, "context_length_exceeded")
        XCTAssertEqual(chat.message, "This model's maximum context length is 128 tokens. However, you requested 150 "
            + "tokens (100 in the messages, 50 in the completion). Please reduce the length of the messages or the completion.")

        let prompt = APIError.contextLengthExceeded(promptTokens: 200, maxTokens: nil, contextLength: 128, param: "prompt")
        XCTAssertEqual(prompt.param, "prompt")
        XCTAssertEqual(prompt.message, "This model's maximum context length is 128 tokens. However, the prompt resulted "
            + "in 200 tokens. Please reduce the length of the prompt.")
    }

    func testStatusesAndTypes() {
        let cases: [(APIError, Int, String, String?)] = [
            (.missingAPIKey, 401, "invalid_request_error", nil),
            (.incorrectAPIKey, 401, "invalid_request_error", "invalid_api_key"),
            (.payloadTooLarge(limit: 1024), 413, "invalid_request_error", nil),
            (.queueFull, 429, "rate_limit_error", "queue_full"),
            (.unavailable("loading"), 503, "server_error", nil),
            (.internalError("boom"), 500, "server_error", nil),
            (.notFound(path: "/v1/nothing"), 404, "invalid_request_error", nil),
            (.methodNotAllowed, 405, "invalid_request_error", nil),
        ]
        for (error, status, type, code) in cases {
            XCTAssertEqual(error.status, status, error.message)
            XCTAssertEqual(error.type, type, error.message)
            XCTAssertEqual(error.code, code, error.message)
            XCTAssertNil(error.param, error.message)
        }
        XCTAssertEqual(APIError.payloadTooLarge(limit: 1024).message, "The request body exceeds the limit of 1024 bytes.")
        XCTAssertEqual(APIError.notFound(path: "/v1/nothing").message, "Invalid URL (/v1/nothing).")
    }

    func testDescriptionForLogs() {
        XCTAssertEqual(APIError.invalidRequest("'n' must be 1.", param: "n").description,
                       "400 invalid_request_error: 'n' must be 1. (param: n)")
    }
}
