import Foundation
import OpenAIAPI
import XCTest

final class ResponseEncodingTests: XCTestCase {
    let usage = Usage(promptTokens: 3, completionTokens: 2)
    let usageJSON: [String: Any] = ["prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5]

    func testCompletionResponse() {
        let response = CompletionResponse(id: "cmpl-1", created: 1700, model: "m",
                                          choices: [CompletionChoice(text: "Hi there", finishReason: .length)], usage: usage)
        assertJSON(response, equals: [
            "id": "cmpl-1", "object": "text_completion", "created": 1700, "model": "m",
            "choices": [["index": 0, "text": "Hi there", "logprobs": NSNull(), "finish_reason": "length"]],
            "usage": usageJSON,
        ])
    }

    func testCompletionChunkMidStreamSendsNulls() {
        let choice = CompletionChoice(text: "Hi", finishReason: nil)
        let withUsage = CompletionChunk(id: "cmpl-1", created: 1700, model: "m", choices: [choice],
                                        usage: ChunkUsage(includeUsage: true))
        assertJSON(withUsage, equals: [
            "id": "cmpl-1", "object": "text_completion", "created": 1700, "model": "m",
            "choices": [["index": 0, "text": "Hi", "logprobs": NSNull(), "finish_reason": NSNull()]],
            "usage": NSNull(),
        ])
        // Clients that did not ask for usage never see the key.
        let withoutUsage = CompletionChunk(id: "cmpl-1", created: 1700, model: "m", choices: [choice],
                                           usage: ChunkUsage(includeUsage: false))
        XCTAssertNil((parse(OpenAIJSON.encode(withoutUsage)) as? [String: Any])?["usage"])
    }

    func testCompletionUsageReport() {
        assertJSON(CompletionChunk.usageReport(id: "cmpl-1", created: 1700, model: "m", usage: usage), equals: [
            "id": "cmpl-1", "object": "text_completion", "created": 1700, "model": "m", "choices": [Any](),
            "usage": usageJSON,
        ])
    }

    func testChatCompletionResponse() {
        let response = ChatCompletionResponse(
            id: "chatcmpl-1", created: 1700, model: "m",
            choices: [.init(message: .init(content: "Hello!"), finishReason: .stop)], usage: usage)
        assertJSON(response, equals: [
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1700, "model": "m",
            "choices": [["index": 0, "message": ["role": "assistant", "content": "Hello!"], "logprobs": NSNull(),
                         "finish_reason": "stop"]],
            "usage": usageJSON,
        ])
    }

    func testChatCompletionChunks() {
        func chunk(_ choice: ChatCompletionChunk.Choice) -> ChatCompletionChunk {
            ChatCompletionChunk(id: "chatcmpl-1", created: 1700, model: "m", choices: [choice], usage: .notRequested)
        }
        func expected(_ delta: [String: Any], finish: Any) -> [String: Any] {
            ["id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700, "model": "m",
             "choices": [["index": 0, "delta": delta, "logprobs": NSNull(), "finish_reason": finish]]]
        }
        assertJSON(chunk(.init(delta: .start)), equals: expected(["role": "assistant", "content": ""], finish: NSNull()))
        assertJSON(chunk(.init(delta: .init(content: "Hel"))), equals: expected(["content": "Hel"], finish: NSNull()))
        assertJSON(chunk(.init(delta: .init(), finishReason: .length)), equals: expected([:], finish: "length"))
    }

    func testChatUsageReport() {
        let chunk = ChatCompletionChunk.usageReport(id: "chatcmpl-1", created: 1700, model: "m", usage: usage)
        assertJSON(chunk, equals: [
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700, "model": "m", "choices": [Any](),
            "usage": usageJSON,
        ])
    }

    func testModelList() {
        assertJSON(ModelList([.init(id: "deepseek-v3", created: 1700, ownedBy: "conclave")]), equals: [
            "object": "list",
            "data": [["id": "deepseek-v3", "object": "model", "created": 1700, "owned_by": "conclave"]],
        ])
    }

    func testServerSentEventFraming() {
        let choice = CompletionChoice(text: "a/b\nc", finishReason: nil)
        let event = ServerSentEvents.data(CompletionChunk(id: "cmpl-1", created: 1, model: "org/model", choices: [choice],
                                                          usage: .notRequested))
        XCTAssertTrue(event.hasPrefix("data: {"))
        XCTAssertTrue(event.hasSuffix("}\n\n"))
        let json = event.dropFirst("data: ".count).dropLast(2)
        XCTAssertFalse(json.contains("\n"), "one event, one line")
        XCTAssertTrue(json.contains("\"org/model\""), "slashes are not escaped")
        let parsed = parse(Data(json.utf8)) as? [String: Any]
        XCTAssertEqual(((parsed?["choices"] as? [[String: Any]])?.first?["text"]) as? String, "a/b\nc")
        XCTAssertEqual(ServerSentEvents.done, "data: [DONE]\n\n")
    }

    func testIDsHaveOpenAIPrefixes() {
        XCTAssertTrue(CompletionResponse.makeID().hasPrefix("cmpl-"))
        XCTAssertTrue(ChatCompletionResponse.makeID().hasPrefix("chatcmpl-"))
        XCTAssertNotEqual(CompletionResponse.makeID(), CompletionResponse.makeID())
    }
}
