import Foundation
import OpenAIAPI
import XCTest

final class LogprobsTests: XCTestCase {
    typealias Token = DecodedTokenLogprobs.Token

    func token(_ text: String, _ logprob: Float) -> Token {
        Token(text: text, bytes: Array(text.utf8), logprob: logprob)
    }

    func testCompletionFormatAndTextOffsets() {
        let tokens = [
            DecodedTokenLogprobs(chosen: token("He", -0.5), top: [token("He", -0.5), token("She", -1.5)]),
            // é as e + combining accent: one character, two Unicode scalars.
            DecodedTokenLogprobs(chosen: token("e\u{301}", -0.25), top: [token("e\u{301}", -0.25)]),
            DecodedTokenLogprobs(chosen: token("!", -2), top: []),
        ]
        let logprobs = CompletionLogprobs(tokens, textOffset: 10)
        XCTAssertEqual(logprobs.textOffset, [10, 12, 14])
        assertJSON(logprobs, equals: [
            "tokens": ["He", "e\u{301}", "!"],
            "token_logprobs": [-0.5, -0.25, -2],
            "top_logprobs": [["He": -0.5, "She": -1.5], ["e\u{301}": -0.25], [String: Any]()],
            "text_offset": [10, 12, 14],
        ])
    }

    func testTextOffsetsCountUnicodeScalarsNotBytes() {
        let tokens = ["👍", "ab", "ü"].map { DecodedTokenLogprobs(chosen: token($0, -1), top: []) }
        XCTAssertEqual(CompletionLogprobs(tokens, textOffset: 0).textOffset, [0, 1, 3])
        XCTAssertEqual(CompletionLogprobs([], textOffset: 5).textOffset, [])
    }

    func testAlternativesWithTheSameTextKeepTheLikelier() {
        let tokens = [DecodedTokenLogprobs(chosen: token("\u{FFFD}", -1), top: [token("\u{FFFD}", -1), token("\u{FFFD}", -3)])]
        XCTAssertEqual(CompletionLogprobs(tokens, textOffset: 0).topLogprobs, [["\u{FFFD}": -1]])
    }

    func testImpossibleTokensReportMinus9999() {
        let tokens = [DecodedTokenLogprobs(chosen: token("x", -.infinity), top: [token("y", .nan), token("z", -1e6)])]
        XCTAssertEqual(CompletionLogprobs(tokens, textOffset: 0).tokenLogprobs, [-9999])
        XCTAssertEqual(ChatLogprobs(tokens).content[0].logprob, -9999)
        XCTAssertEqual(ChatLogprobs(tokens).content[0].topLogprobs.map(\.logprob), [-9999, -9999])
        assertJSON(ChatLogprobs(tokens), equals: ["content": [[
            "token": "x", "logprob": -9999, "bytes": [120],
            "top_logprobs": [["token": "y", "logprob": -9999, "bytes": [121]], ["token": "z", "logprob": -9999, "bytes": [122]]],
        ]]])
    }

    func testChatFormatCarriesBytes() {
        // A token holding the first two bytes of "€" (E2 82 AC): its text cannot show them, its bytes do.
        let partial = Token(text: "\u{FFFD}", bytes: [0xE2, 0x82], logprob: -0.5)
        let tokens = [DecodedTokenLogprobs(chosen: partial, top: [partial, token("a", -1)])]
        assertJSON(ChatLogprobs(tokens), equals: ["content": [[
            "token": "\u{FFFD}", "logprob": -0.5, "bytes": [0xE2, 0x82],
            "top_logprobs": [["token": "\u{FFFD}", "logprob": -0.5, "bytes": [0xE2, 0x82]],
                             ["token": "a", "logprob": -1, "bytes": [97]]],
        ]]])
    }

    func testLogprobsInsideChoices() {
        let tokens = [DecodedTokenLogprobs(chosen: token("Hi", -0.5), top: [])]
        let chat = ChatCompletionChunk.Choice(delta: .init(content: "Hi"), logprobs: ChatLogprobs(tokens))
        assertJSON(chat, equals: [
            "index": 0, "delta": ["content": "Hi"], "finish_reason": NSNull(),
            "logprobs": ["content": [["token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": [Any]()]]],
        ])
        let completion = CompletionChoice(text: "Hi", logprobs: CompletionLogprobs(tokens, textOffset: 0), finishReason: .stop)
        assertJSON(completion, equals: [
            "index": 0, "text": "Hi", "finish_reason": "stop",
            "logprobs": ["tokens": ["Hi"], "token_logprobs": [-0.5], "top_logprobs": [[String: Any]()], "text_offset": [0]],
        ])
    }
}
