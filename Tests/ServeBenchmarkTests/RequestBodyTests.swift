import Foundation
@testable import ServeBenchmark
import Testing

@Suite struct RequestBodyTests {
    let prompts = PromptSource(length: 4, seed: 9)

    func fields(_ endpoint: Endpoint) throws -> [String: Any] {
        let body = StreamedRequestBody(endpoint: endpoint, model: "tiny", prompts: prompts, index: 2, maxTokens: 16).json()
        return try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
    }

    @Test func completionsStreamGreedyFixedLengthWithUsage() throws {
        let body = try fields(.completions)
        #expect(body["model"] as? String == "tiny")
        #expect(body["prompt"] as? [Int] == prompts.tokens(for: 2))
        #expect(body["max_tokens"] as? Int == 16)
        #expect(body["stream"] as? Bool == true)
        #expect(body["ignore_eos"] as? Bool == true)
        #expect(body["temperature"] as? Int == 0)
        #expect((body["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
        #expect(body["messages"] == nil)
    }

    @Test func chatSendsThePromptAsOneUserMessage() throws {
        let body = try fields(.chat)
        let messages = try #require(body["messages"] as? [[String: String]])
        #expect(messages == [["role": "user", "content": prompts.text(for: 2)]])
        #expect(body["prompt"] == nil)
    }
}
