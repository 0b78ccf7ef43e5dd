import Foundation
import Testing
@testable import Tokenizer

@Suite struct TokenizerBuilderTests {
    private static let samples = [
        "The quick brown fox jumps over the lazy dog.",
        "It's 12345 o'clock; we'll see.\n\n\tdef f(x): return x ** 2",
        "人工智能 ひらがな カタカナ 한국어 Привет café e\u{301} 👨‍👩‍👧‍👦",
        "<｜User｜>hi<｜Assistant｜><think>ok</think>done<｜end▁of▁sentence｜>",
    ]

    @Test(arguments: [263, 1024, 32000])
    func buildsExactVocabularyThatRoundTrips(vocabSize: Int) throws {
        let tokenizer = try Tokenizer(
            tokenizerJSON: TokenizerBuilder.deepseekStyle(vocabSize: vocabSize),
            configJSON: try TokenizerBuilder.tokenizerConfigJSON())
        #expect(tokenizer.vocabSize == vocabSize)
        #expect(tokenizer.bosId == 0)
        #expect(tokenizer.eosId == 1)
        for id in 0..<vocabSize { #expect(tokenizer.token(of: id) != nil) }
        for text in Self.samples + [TrainingCorpus.text] {
            #expect(try tokenizer.decode(tokenizer.encode(text, addBOS: false), skipSpecial: false) == text)
        }
    }

    @Test func learnedMergesShortenCommonText() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: TokenizerBuilder.deepseekStyle(vocabSize: 1024))
        let text = "The committee reviewed the proposal and the results."
        #expect(tokenizer.encode(text, addBOS: false).count * 2 < text.utf8.count)
    }

    @Test func isDeterministic() throws {
        let first = try TokenizerBuilder.deepseekStyle(vocabSize: 32000)
        #expect(try TokenizerBuilder.deepseekStyle(vocabSize: 32000) == first)
    }

    @Test func refusesVocabularyBelowBytesAndSpecials() {
        #expect(throws: TokenizerError.vocabSizeTooSmall(requested: 100, minimum: 263)) {
            try TokenizerBuilder.deepseekStyle(vocabSize: 100)
        }
    }
}
