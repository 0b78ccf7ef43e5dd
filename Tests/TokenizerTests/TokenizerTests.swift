import Foundation
import Testing
@testable import Tokenizer

/// Tests/Fixtures/tokenizer, written by tools/fixtures/tokenizer_fixture.py
/// with Hugging Face `tokenizers`.
private let fixtureDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/tokenizer")

private struct EncodeCase: Decodable {
    let text: String
    let ids: [Int]
}

private struct DecodeCase: Decodable {
    let ids: [Int]
    let skipSpecial: Bool
    let text: String
    enum CodingKeys: String, CodingKey { case ids, text, skipSpecial = "skip_special" }
}

private func fixture<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
    try JSONDecoder().decode(type, from: Data(contentsOf: fixtureDirectory.appendingPathComponent(name)))
}

private let fixtureTokenizer = Result { try Tokenizer(directory: fixtureDirectory) }

/// The fixture's tokenizer.json with `edit` applied to its JSON object.
private func editedFixture(_ edit: (inout [String: Any]) -> Void) throws -> Data {
    let data = try Data(contentsOf: fixtureDirectory.appendingPathComponent("tokenizer.json"))
    var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    edit(&object)
    return try JSONSerialization.data(withJSONObject: object)
}

@Suite struct HuggingFaceParityTests {
    @Test func encodesEveryCaseLikeHuggingFace() throws {
        let tokenizer = try fixtureTokenizer.get()
        let cases = try fixture("cases.json", as: [EncodeCase].self)
        #expect(cases.count >= 40)
        for testCase in cases {
            #expect(tokenizer.encode(testCase.text, addBOS: false) == testCase.ids, "\(testCase.text.debugDescription)")
        }
    }

    @Test func decodeRoundTripsEveryCase() throws {
        let tokenizer = try fixtureTokenizer.get()
        for testCase in try fixture("cases.json", as: [EncodeCase].self) {
            #expect(try tokenizer.decode(testCase.ids, skipSpecial: false) == testCase.text)
        }
    }

    @Test func decodesLikeHuggingFace() throws {
        let tokenizer = try fixtureTokenizer.get()
        for testCase in try fixture("decode_cases.json", as: [DecodeCase].self) {
            #expect(try tokenizer.decode(testCase.ids, skipSpecial: testCase.skipSpecial) == testCase.text)
        }
    }

    @Test func acceptsMergesWrittenAsPairs() throws {
        let data = try editedFixture { object in
            var model = object["model"] as! [String: Any]
            model["merges"] = (model["merges"] as! [String]).map { $0.split(separator: " ").map(String.init) }
            object["model"] = model
        }
        let tokenizer = try Tokenizer(tokenizerJSON: data)
        for testCase in try fixture("cases.json", as: [EncodeCase].self) {
            #expect(tokenizer.encode(testCase.text, addBOS: false) == testCase.ids)
        }
    }
}

@Suite struct SpecialTokenTests {
    @Test func readsBOSAndEOSFromConfig() throws {
        let tokenizer = try fixtureTokenizer.get()
        #expect(tokenizer.bosId == 0)
        #expect(tokenizer.eosId == 1)
        #expect(tokenizer.vocabSize == 2000)
        #expect(tokenizer.config.addBOSToken)
        #expect(tokenizer.config.modelMaxLength == 16384)
        #expect(tokenizer.id(of: "<｜User｜>") == 1996)
        #expect(tokenizer.token(of: 1997) == "<｜Assistant｜>")
        #expect(tokenizer.token(of: 2000) == nil)
    }

    @Test func addedTokensInsideTextAreNeverMerged() throws {
        let tokenizer = try fixtureTokenizer.get()
        let ids = tokenizer.encode("hello<｜end▁of▁sentence｜>world", addBOS: true)
        let hello = tokenizer.encode("hello", addBOS: false)
        let world = tokenizer.encode("world", addBOS: false)
        #expect(ids == [0] + hello + [1] + world)

        let user = try #require(tokenizer.id(of: "<｜User｜>"))
        let assistant = try #require(tokenizer.id(of: "<｜Assistant｜>"))
        #expect(tokenizer.encode("<｜User｜>hi<｜Assistant｜>", addBOS: false)
            == [user] + tokenizer.encode("hi", addBOS: false) + [assistant])
    }

    @Test func skipSpecialDropsOnlySpecialTokens() throws {
        let tokenizer = try fixtureTokenizer.get()
        let ids = tokenizer.encode("<｜begin▁of▁sentence｜><｜User｜>hi<｜end▁of▁sentence｜>", addBOS: false)
        #expect(try tokenizer.decode(ids, skipSpecial: true) == "<｜User｜>hi")
    }
}

@Suite struct StreamingDecoderTests {
    @Test func streamedPiecesConcatenateToDecode() throws {
        let tokenizer = try fixtureTokenizer.get()
        for testCase in try fixture("cases.json", as: [EncodeCase].self) {
            var decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecial: false)
            var pieces: [String] = []
            for id in testCase.ids { pieces.append(try decoder.append(id)) }
            pieces.append(decoder.finish())
            #expect(pieces.joined() == testCase.text)
            if !testCase.text.contains("\u{FFFD}") {
                #expect(!pieces.contains { $0.contains("\u{FFFD}") }, "\(testCase.text.debugDescription) streamed partially")
            }
        }
    }

    @Test func holdsBackIncompleteCharacters() throws {
        let tokenizer = try fixtureTokenizer.get()
        // 😀 is F0 9F 98 80: feed it one byte token at a time.
        let byteIds = try [0xF0, 0x9F, 0x98, 0x80].map { byte in
            try #require(tokenizer.id(of: String(ByteLevel.scalarOfByte[byte])))
        }
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        #expect(try byteIds.dropLast().map { try decoder.append($0) } == ["", "", ""])
        #expect(try decoder.append(byteIds[3]) == "😀")
        #expect(decoder.finish() == "")
    }

    @Test func finishFlushesATruncatedCharacterAsReplacement() throws {
        let tokenizer = try fixtureTokenizer.get()
        let lead = try #require(tokenizer.id(of: String(ByteLevel.scalarOfByte[0xE4])))
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        #expect(try decoder.append(lead) == "")
        #expect(decoder.finish() == "\u{FFFD}")
    }
}

@Suite struct TokenizerErrorTests {
    @Test func refusesUnsupportedPreTokenizerByName() throws {
        let data = try editedFixture { $0["pre_tokenizer"] = ["type": "Whitespace"] }
        #expect(throws: TokenizerError.unsupported(component: "pre_tokenizer Whitespace", file: "tokenizer.json")) {
            try Tokenizer(tokenizerJSON: data)
        }
    }

    @Test func refusesNormalizersAndOtherModels() throws {
        let normalized = try editedFixture { $0["normalizer"] = ["type": "NFC"] }
        #expect(throws: TokenizerError.unsupported(component: "normalizer NFC", file: "tokenizer.json")) {
            try Tokenizer(tokenizerJSON: normalized)
        }
        let wordPiece = try editedFixture { object in
            var model = object["model"] as! [String: Any]
            model["type"] = "WordPiece"
            object["model"] = model
        }
        #expect(throws: TokenizerError.unsupported(component: "model WordPiece", file: "tokenizer.json")) {
            try Tokenizer(tokenizerJSON: wordPiece)
        }
    }

    @Test func namesMissingFilesAndBadJSON() throws {
        let missing = URL(fileURLWithPath: "/nonexistent-model")
        #expect(throws: TokenizerError.missingFile(path: "/nonexistent-model/tokenizer.json")) {
            try Tokenizer(directory: missing)
        }
        #expect {
            try Tokenizer(tokenizerJSON: Data("{\"model\": 3}".utf8), tokenizerFile: "m/tokenizer.json")
        } throws: { error in
            guard case .malformedJSON(let file, _)? = error as? TokenizerError else { return false }
            return file == "m/tokenizer.json"
        }
    }

    @Test func reportsUnknownIdsInDecode() throws {
        let tokenizer = try fixtureTokenizer.get()
        #expect(throws: TokenizerError.unknownTokenId(5000, vocabSize: 2000)) {
            try tokenizer.decode([5, 5000], skipSpecial: false)
        }
    }
}

@Suite struct ChatTemplateTests {
    @Test func rendersDeepSeekConversation() {
        let text = ChatTemplate.deepseek.render([
            ChatMessage(role: .system, content: "Be brief."),
            ChatMessage(role: .user, content: "Hi"),
            ChatMessage(role: .assistant, content: "Hello!"),
            ChatMessage(role: .user, content: "2+2?"),
        ])
        #expect(text == "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
            + "<｜User｜>2+2?<｜Assistant｜>")
    }

    @Test func renderedPromptEncodesMarkersAsSingleTokens() throws {
        let tokenizer = try fixtureTokenizer.get()
        let prompt = ChatTemplate.deepseek.render([ChatMessage(role: .user, content: "hi")])
        let ids = tokenizer.encode(prompt, addBOS: false)
        #expect(ids.first == tokenizer.bosId)
        #expect(ids.last == tokenizer.id(of: "<｜Assistant｜>"))
        #expect(ids.count == 3 + tokenizer.encode("hi", addBOS: false).count)
    }
}
