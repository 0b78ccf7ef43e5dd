import Foundation
import OpenAIAPI
import XCTest

final class CompletionRequestTests: XCTestCase {
    func validate(_ fields: [String: Any]) throws -> ValidatedRequest {
        try ValidatedRequest.completion(from: body(["model": "m", "prompt": "Hi"].merging(fields) { $1 }))
    }

    /// The 400 a body raises, checked for its param.
    func rejection(_ fields: [String: Any], param: String?, file: StaticString = #filePath, line: UInt = #line) -> APIError? {
        let error = validationError({ () throws(APIError) in
            try ValidatedRequest.completion(from: body(["model": "m", "prompt": "Hi"].merging(fields) { $1 }))
        }, file: file, line: line)
        XCTAssertEqual(error?.status, 400, file: file, line: line)
        XCTAssertEqual(error?.type, "invalid_request_error", file: file, line: line)
        XCTAssertEqual(error?.param, param, "\(error?.message ?? "")", file: file, line: line)
        return error
    }

    func testDefaultsFollowOpenAI() throws {
        XCTAssertEqual(try validate([:]), ValidatedRequest(model: "m", prompt: .text("Hi"), maxTokens: 16))
    }

    func testEveryFieldIsRead() throws {
        let request = try validate([
            "max_tokens": 5, "temperature": 0.5, "top_p": 0.75, "top_k": 40, "seed": 7, "stop": ["a", "b"],
            "stream": true, "stream_options": ["include_usage": true], "logprobs": 2, "ignore_eos": true,
            "n": 1, "user": "someone", "presence_penalty": 0, "frequency_penalty": NSNull(), "echo": false,
        ])
        XCTAssertEqual(request, ValidatedRequest(
            model: "m", prompt: .text("Hi"), maxTokens: 5, temperature: 0.5, topP: 0.75, topK: 40, seed: 7,
            stop: ["a", "b"], stream: true, includeUsage: true, logprobs: 2, echo: false, ignoreEOS: true))
    }

    func testPromptForms() throws {
        XCTAssertEqual(try validate(["prompt": [1, 2, 3]]).prompt, .tokens([1, 2, 3]))
        XCTAssertEqual(try validate(["prompt": ["Hello"]]).prompt, .text("Hello"))
        XCTAssertEqual(try validate(["prompt": [[4, 5]]]).prompt, .tokens([4, 5]))
        XCTAssertEqual(try validate(["prompt": [0]]).prompt, .tokens([0]))
    }

    func testSeveralPromptsAreRejected() {
        for prompt: Any in [["a", "b"], [[1], [2]]] {
            XCTAssertEqual(rejection(["prompt": prompt], param: "prompt")?.message, "Only one prompt per request is supported.")
        }
    }

    func testEmptyPromptsAreRejected() {
        for prompt: Any in ["", [Int](), [[Int]()], [""]] {
            XCTAssertEqual(rejection(["prompt": prompt], param: "prompt")?.message, "'prompt' must not be empty.")
        }
    }

    func testNegativeTokenIdsAreRejected() {
        XCTAssertEqual(rejection(["prompt": [3, -1]], param: "prompt")?.message,
                       "'prompt' token ids must not be negative; found -1.")
    }

    func testPromptOfAnotherShapeNamesTheField() {
        for prompt: Any in [5, ["a": 1], [1, "a"], [1.5], [true]] {
            let error = rejection(["prompt": prompt], param: "prompt")
            XCTAssertEqual(error?.message, "'prompt' must be a string or an array of token ids.")
            XCTAssertEqual(error?.code, "invalid_type")
        }
    }

    func testMissingRequiredFields() {
        for field in ["model", "prompt"] {
            let error = validationError { () throws(APIError) in
                var fields: [String: Any] = ["model": "m", "prompt": "Hi"]
                fields[field] = nil
                return try ValidatedRequest.completion(from: body(fields))
            }
            XCTAssertEqual(error?.status, 400)
            XCTAssertEqual(error?.param, field)
            XCTAssertEqual(error?.message, "Missing required parameter: '\(field)'.")
        }
        XCTAssertEqual(rejection(["model": NSNull()], param: "model")?.message, "Missing required parameter: 'model'.")
    }

    func testWrongTypesNameTheFieldAndType() {
        let cases: [(field: String, value: Any, message: String)] = [
            ("max_tokens", "5", "'max_tokens' must be an integer."),
            ("max_tokens", 1.5, "'max_tokens' must be an integer."),
            ("temperature", "hot", "'temperature' must be a number."),
            ("stream", "yes", "'stream' must be a boolean."),
            ("model", 3, "'model' must be a string."),
            ("stop", 5, "'stop' must be a string or an array of strings."),
            ("stop", [1], "'stop' must be a string or an array of strings."),
            ("stream_options", true, "'stream_options' must be an object."),
            ("seed", "x", "'seed' must be an integer."),
            ("logprobs", true, "'logprobs' must be an integer."),
        ]
        for (field, value, message) in cases {
            let error = rejection([field: value], param: field)
            XCTAssertEqual(error?.message, message)
            XCTAssertEqual(error?.code, "invalid_type")
        }
        XCTAssertEqual(rejection(["stream_options": ["include_usage": 1]], param: "stream_options.include_usage")?.message,
                       "'stream_options.include_usage' must be a boolean.")
    }

    func testMaxTokens() throws {
        XCTAssertEqual(try validate(["max_tokens": NSNull()]).maxTokens, 16)
        XCTAssertEqual(try validate(["max_tokens": 1]).maxTokens, 1)
        for value in [0, -3] {
            XCTAssertEqual(rejection(["max_tokens": value], param: "max_tokens")?.message, "'max_tokens' must be at least 1.")
        }
    }

    func testSamplingRanges() throws {
        XCTAssertEqual(try validate(["temperature": 0]).temperature, 0)
        XCTAssertEqual(try validate(["temperature": 2]).temperature, 2)
        for value in [-0.1, 2.1] { _ = rejection(["temperature": value], param: "temperature") }
        XCTAssertEqual(try validate(["top_p": 1]).topP, 1)
        for value in [0, 1.1, -1] { _ = rejection(["top_p": value], param: "top_p") }
        XCTAssertEqual(try validate(["top_k": -1]).topK, 0)
        XCTAssertEqual(try validate(["top_k": 0]).topK, 0)
        XCTAssertEqual(try validate(["top_k": 1]).topK, 1)
        _ = rejection(["top_k": -2], param: "top_k")
    }

    func testSeedKeepsItsBitPattern() throws {
        XCTAssertEqual(try validate(["seed": 0]).seed, 0)
        XCTAssertEqual(try validate(["seed": -1]).seed, UInt64.max)
        XCTAssertNil(try validate(["seed": NSNull()]).seed)
    }

    func testStopSequences() throws {
        XCTAssertEqual(try validate(["stop": "\n"]).stop, ["\n"])
        XCTAssertEqual(try validate(["stop": NSNull()]).stop, [])
        XCTAssertEqual(try validate(["stop": ["", "x"]]).stop, ["x"])
        XCTAssertEqual(try validate(["stop": ""]).stop, [])
        XCTAssertEqual(try validate(["stop": ["a", "b", "c", "d"]]).stop.count, 4)
        XCTAssertEqual(rejection(["stop": ["a", "b", "c", "d", "e"]], param: "stop")?.message,
                       "'stop' accepts at most 4 sequences.")
    }

    func testUsageIsOnlyStreamedWhenStreaming() throws {
        XCTAssertFalse(try validate(["stream_options": ["include_usage": true]]).includeUsage)
        XCTAssertFalse(try validate(["stream": true]).includeUsage)
        XCTAssertFalse(try validate(["stream": true, "stream_options": [String: Any]()]).includeUsage)
        XCTAssertTrue(try validate(["stream": true, "stream_options": ["include_usage": true]]).includeUsage)
    }

    func testLogprobs() throws {
        XCTAssertEqual(try validate(["logprobs": 0]).logprobs, 0)
        XCTAssertEqual(try validate(["logprobs": 5]).logprobs, 5)
        XCTAssertNil(try validate(["logprobs": NSNull()]).logprobs)
        for value in [6, -1] {
            XCTAssertEqual(rejection(["logprobs": value], param: "logprobs")?.message, "'logprobs' must be between 0 and 5.")
        }
    }

    func testEcho() throws {
        XCTAssertTrue(try validate(["echo": true]).echo)
        XCTAssertEqual(rejection(["echo": true, "logprobs": 1], param: "echo")?.message,
                       "echo with logprobs is not supported.")
    }

    func testOnlyOneChoice() throws {
        XCTAssertNoThrow(try validate(["n": 1]))
        XCTAssertEqual(rejection(["n": 2], param: "n")?.message, "Only one choice per request is supported: 'n' must be 1.")
    }

    func testPenaltiesAreUnsupported() throws {
        XCTAssertNoThrow(try validate(["presence_penalty": 0, "frequency_penalty": 0.0]))
        for field in ["presence_penalty", "frequency_penalty"] {
            XCTAssertEqual(rejection([field: 0.5], param: field)?.message, "'\(field)' is not supported: send 0 or omit it.")
        }
    }

    func testMalformedBodies() {
        let syntax = validationError { () throws(APIError) in try ValidatedRequest.completion(from: Data("{\"model\": x}".utf8)) }
        XCTAssertEqual(syntax?.status, 400)
        XCTAssertNil(syntax?.param)
        XCTAssertTrue(syntax?.message.hasPrefix("The request body is not valid JSON: ") == true, syntax?.message ?? "")
        XCTAssertTrue(syntax?.message.contains("character") == true, "the message locates the problem: \(syntax?.message ?? "")")

        let empty = validationError { () throws(APIError) in try ValidatedRequest.completion(from: Data()) }
        XCTAssertEqual(empty?.message, "The request body is empty; send a JSON object.")

        for text in ["[1]", "\"prompt\"", "3"] {
            let notObject = validationError { () throws(APIError) in try ValidatedRequest.completion(from: Data(text.utf8)) }
            XCTAssertEqual(notObject?.status, 400)
            XCTAssertEqual(notObject?.message, "The request body must be a JSON object.")
            XCTAssertNil(notObject?.param)
        }
    }

    func testUnknownFieldsAreIgnored() throws {
        XCTAssertNoThrow(try validate(["suffix": NSNull(), "metadata": ["a": 1]]))
    }
}
