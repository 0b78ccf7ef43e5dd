import Foundation
import OpenAIAPI
import XCTest

final class ChatCompletionRequestTests: XCTestCase {
    let hello: [[String: Any]] = [["role": "user", "content": "Hello"]]

    func validate(_ fields: [String: Any]) throws -> ValidatedRequest {
        try ValidatedRequest.chatCompletion(from: body(["model": "m", "messages": hello].merging(fields) { $1 }))
    }

    func rejection(_ fields: [String: Any], param: String?, file: StaticString = #filePath, line: UInt = #line) -> APIError? {
        let error = validationError({ () throws(APIError) in
            try ValidatedRequest.chatCompletion(from: body(["model": "m", "messages": hello].merging(fields) { $1 }))
        }, file: file, line: line)
        XCTAssertEqual(error?.status, 400, file: file, line: line)
        XCTAssertEqual(error?.param, param, "\(error?.message ?? "")", file: file, line: line)
        return error
    }

    func testDefaults() throws {
        XCTAssertEqual(try validate([:]), ValidatedRequest(
            model: "m", prompt: .chat([.init(role: "user", content: "Hello")]), maxTokens: nil))
    }

    func testEveryFieldIsRead() throws {
        let request = try validate([
            "max_completion_tokens": 9, "temperature": 0.25, "top_p": 0.5, "top_k": 3, "seed": 11, "stop": "END",
            "stream": true, "stream_options": ["include_usage": true], "logprobs": true, "top_logprobs": 4,
            "ignore_eos": true, "n": 1, "user": "u",
        ])
        XCTAssertEqual(request, ValidatedRequest(
            model: "m", prompt: .chat([.init(role: "user", content: "Hello")]), maxTokens: 9, temperature: 0.25,
            topP: 0.5, topK: 3, seed: 11, stop: ["END"], stream: true, includeUsage: true, logprobs: 4, ignoreEOS: true))
    }

    func testRolesKeepTheirOrderAndDeveloperIsSystem() throws {
        let messages: [[String: Any]] = [
            ["role": "developer", "content": "Be brief."], ["role": "system", "content": "S"],
            ["role": "user", "content": "Q", "name": "ann"], ["role": "assistant", "content": "A"],
        ]
        XCTAssertEqual(try validate(["messages": messages]).prompt, .chat([
            .init(role: "system", content: "Be brief."), .init(role: "system", content: "S"),
            .init(role: "user", content: "Q"), .init(role: "assistant", content: "A"),
        ]))
    }

    func testTextContentPartsAreJoined() throws {
        let parts: [[String: Any]] = [["type": "text", "text": "first"], ["type": "text", "text": "second"]]
        XCTAssertEqual(try validate(["messages": [["role": "user", "content": parts]]]).prompt,
                       .chat([.init(role: "user", content: "first\nsecond")]))
    }

    func testOtherContentPartsAreRejected() {
        let parts: [[String: Any]] = [["type": "text", "text": "look"], ["type": "image_url", "image_url": ["url": "x"]]]
        let error = rejection(["messages": [["role": "user", "content": parts]]], param: "messages[0].content[1].type")
        XCTAssertEqual(error?.message, "Content parts of type 'image_url' are not supported; only 'text' is.")
    }

    func testMalformedMessagesNameThePath() {
        let cases: [(messages: Any, param: String, message: String)] = [
            ("hi", "messages", "'messages' must be an array."),
            (["hi"], "messages[0]", "'messages[0]' must be an object."),
            ([["role": "user", "content": 5]], "messages[0].content",
             "'messages[0].content' must be a string or an array of content parts."),
            ([["role": "user", "content": ["text"]]], "messages[0].content[0]", "'messages[0].content[0]' must be an object."),
            ([["role": "user", "content": [["type": "text"]]]], "messages[0].content[0].text",
             "Missing required parameter: 'messages[0].content[0].text'."),
            ([["role": "user", "content": "a"], ["content": "b"]], "messages[1].role",
             "Missing required parameter: 'messages[1].role'."),
            ([["role": 1, "content": "b"]], "messages[0].role", "'messages[0].role' must be a string."),
            ([["role": "user"]], "messages[0].content", "Missing required parameter: 'messages[0].content'."),
            ([["role": "assistant", "content": NSNull()]], "messages[0].content",
             "Missing required parameter: 'messages[0].content'."),
        ]
        for (messages, param, message) in cases {
            XCTAssertEqual(rejection(["messages": messages], param: param)?.message, message)
        }
    }

    func testUnsupportedRolesAreRejected() {
        let error = rejection(["messages": [["role": "tool", "content": "42"]]], param: "messages[0].role")
        XCTAssertEqual(error?.message, "Unsupported role 'tool' in 'messages[0].role': use system, developer, user or assistant.")
    }

    func testEmptyOrMissingMessages() {
        XCTAssertEqual(rejection(["messages": [Any]()], param: "messages")?.message,
                       "'messages' must contain at least one message.")
        XCTAssertEqual(rejection(["messages": NSNull()], param: "messages")?.message,
                       "Missing required parameter: 'messages'.")
    }

    func testMaxCompletionTokensWinsOverMaxTokens() throws {
        XCTAssertEqual(try validate(["max_tokens": 5]).maxTokens, 5)
        XCTAssertEqual(try validate(["max_completion_tokens": 7]).maxTokens, 7)
        XCTAssertEqual(try validate(["max_tokens": 5, "max_completion_tokens": 7]).maxTokens, 7)
        XCTAssertEqual(try validate(["max_tokens": 5, "max_completion_tokens": NSNull()]).maxTokens, 5)
        _ = rejection(["max_completion_tokens": 0], param: "max_completion_tokens")
        _ = rejection(["max_tokens": 0], param: "max_tokens")
        _ = rejection(["max_completion_tokens": "many"], param: "max_completion_tokens")
    }

    func testLogprobs() throws {
        XCTAssertNil(try validate(["logprobs": false]).logprobs)
        XCTAssertEqual(try validate(["logprobs": true]).logprobs, 0)
        XCTAssertEqual(try validate(["logprobs": true, "top_logprobs": 20]).logprobs, 20)
        XCTAssertEqual(rejection(["top_logprobs": 2], param: "top_logprobs")?.message,
                       "'top_logprobs' requires 'logprobs' to be true.")
        _ = rejection(["logprobs": false, "top_logprobs": 2], param: "top_logprobs")
        XCTAssertEqual(rejection(["logprobs": true, "top_logprobs": 21], param: "top_logprobs")?.message,
                       "'top_logprobs' must be between 0 and 20.")
        _ = rejection(["logprobs": true, "top_logprobs": -1], param: "top_logprobs")
        XCTAssertEqual(rejection(["logprobs": 3], param: "logprobs")?.message, "'logprobs' must be a boolean.")
    }

    func testSharedRulesApply() {
        _ = rejection(["temperature": 3], param: "temperature")
        _ = rejection(["top_p": 0], param: "top_p")
        _ = rejection(["n": 3], param: "n")
        _ = rejection(["presence_penalty": 1], param: "presence_penalty")
        _ = rejection(["stop": ["1", "2", "3", "4", "5"]], param: "stop")
        _ = rejection(["model": NSNull()], param: "model")
    }

    func testChatNeverEchoes() throws {
        XCTAssertFalse(try validate(["echo": true]).echo)
    }
}
