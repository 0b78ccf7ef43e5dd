import Attention
import Checkpoint
import Model
import Testing

/// The exact numerics' promise, checked bit for bit: a position's logits do not depend
/// on what else shares its step or on how its prompt was split into steps.
@Suite struct InvarianceTests {
    /// A fixed pseudo-random prompt (no tokenizer needed), ids below `vocab`.
    static func prompt(_ length: Int, seed: UInt64, vocab: Int) -> [Int] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<length).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % vocab
        }
    }

    static func bits(_ values: some Sequence<Float>) -> [UInt32] { values.map(\.bitPattern) }

    /// Logits of every position of `tokens` run as steps of `chunk` tokens of one sequence,
    /// continuing what `cache` holds.
    static func chunked(_ model: DeepseekModel, _ tokens: [Int], chunk: Int, into cache: LatentCache? = nil) throws -> [Float] {
        let cache = cache ?? model.makeCache(capacity: tokens.count)
        var logits: [Float] = []
        for start in stride(from: 0, to: tokens.count, by: chunk) {
            let part = Array(tokens[start ..< min(start + chunk, tokens.count)])
            logits += try model.forward(tokens: part, batch: AttentionBatch(slices: [.init(cache: cache, first: 0, count: part.count)]),
                                        logitRows: Array(part.indices))
        }
        return logits
    }

    /// Whole prompt, chunks of 1 (token by token, as decode runs), 7 and 64: the same bits.
    @Test(arguments: Fixtures.modelCases)
    func promptSplitDoesNotChangeLogits(_ name: String) throws {
        let model = try DeepseekModel(checkpoint: Checkpoint(directory: Fixtures.model(name)))
        let tokens = Self.prompt(80, seed: 1, vocab: model.config.vocabSize)
        let whole = Self.bits(try Self.chunked(model, tokens, chunk: tokens.count))
        for chunk in [1, 7, 64] {
            #expect(Self.bits(try Self.chunked(model, tokens, chunk: chunk)) == whole, "\(name): chunks of \(chunk) vs whole prompt")
        }
    }

    /// One sequence's step alone and inside steps of 2, 8 and 33 sequences, the others a
    /// mix of decodes and prompt chunks of several lengths: the same bits, both when the
    /// sequence decodes and when it prefills.
    @Test(arguments: Fixtures.modelCases)
    func otherSequencesDoNotChangeLogits(_ name: String) throws {
        let model = try DeepseekModel(checkpoint: Checkpoint(directory: Fixtures.model(name)))
        let vocab = model.config.vocabSize
        let target = Self.prompt(20, seed: 2, vocab: vocab)
        let prefix = Array(target.dropLast())

        func run(_ others: Int, prefilling: Bool) throws -> [Float] {
            let cache = model.makeCache()
            if !prefilling { _ = try Self.chunked(model, prefix, chunk: prefix.count, into: cache) }
            let mine = prefilling ? target : [target.last!]
            var tokens = mine, slices: [AttentionBatch.Slice] = [.init(cache: cache, first: 0, count: mine.count)]
            for o in 0..<others {
                let other = model.makeCache()
                let history = Self.prompt(3 + o % 5, seed: UInt64(100 + o), vocab: vocab)
                if o % 2 == 0 { _ = try Self.chunked(model, history, chunk: history.count, into: other) }
                let step = o % 2 == 0 ? [o % vocab] : Array(history.prefix(1 + o % 9))
                slices.append(.init(cache: other, first: tokens.count, count: step.count))
                tokens += step
            }
            return try model.forward(tokens: tokens, batch: AttentionBatch(slices: slices), logitRows: Array(mine.indices))
        }

        for prefilling in [false, true] {
            let alone = Self.bits(try run(0, prefilling: prefilling))
            for n in [2, 8, 33] {
                #expect(Self.bits(try run(n - 1, prefilling: prefilling)) == alone,
                        "\(name): \(prefilling ? "prefill" : "decode") step alone vs among \(n) sequences")
            }
        }
    }
}
