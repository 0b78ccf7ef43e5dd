import Foundation

/// Tokenizer files for the models this project generates: DeepSeek-V3's
/// layout (pre-tokenizer, decoder, special tokens) with a small vocabulary
/// learned from a built-in corpus. Deterministic: the same size gives the
/// same bytes.
public enum TokenizerBuilder {
    static let specialTokens = [Tokenizer.deepseekBOS, Tokenizer.deepseekEOS, "<｜▁pad▁｜>"]
    /// Non-special added tokens, as in DeepSeek-R1.
    static let markerTokens = ["<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"]

    /// Every byte, the special tokens and the chat markers.
    public static let minimumVocabSize = 256 + specialTokens.count + markerTokens.count

    /// tokenizer.json with exactly `vocabSize` ids: specials 0-2, the 256
    /// bytes, learned merges, the chat markers, then `<｜reserved_N｜>`
    /// placeholders when the corpus runs out of merges.
    public static func deepseekStyle(vocabSize: Int) throws -> Data {
        guard vocabSize >= minimumVocabSize else {
            throw TokenizerError.vocabSizeTooSmall(requested: vocabSize, minimum: minimumVocabSize)
        }
        let pieces = try PreTokenizer(.deepseekV3).pieces(TrainingCorpus.text)
        var trainer = BPETrainer(pieces: pieces)
        trainer.train(tokenCount: vocabSize - specialTokens.count - markerTokens.count)

        var vocab: [String: Int] = [:]
        var added: [TokenizerFile.AddedToken] = []
        for (id, token) in specialTokens.enumerated() {
            vocab[token] = id
            added.append(.init(id: id, content: token, special: true))
        }
        for token in trainer.tokens { vocab[token] = vocab.count }
        let reserved = (0..<(vocabSize - vocab.count - markerTokens.count)).map { "<｜reserved_\($0)｜>" }
        for (offset, token) in (markerTokens + reserved).enumerated() {
            added.append(.init(id: vocab.count + offset, content: token, special: false))
        }

        let file = TokenizerFile(
            addedTokens: added, preTokenizer: .deepseekV3,
            model: BPEModelSpec(vocab: vocab, merges: trainer.merges))
        return try encoder.encode(file)
    }

    /// tokenizer_config.json naming bos/eos, with DeepSeek-V3's chat template
    /// reduced to the turns `ChatTemplate.deepseek` renders.
    public static func tokenizerConfigJSON(modelMaxLength: Int = 16384) throws -> Data {
        try encoder.encode([
            "add_bos_token": .bool(true),
            "add_eos_token": .bool(false),
            "bos_token": .string(specialTokens[0]),
            "eos_token": .string(specialTokens[1]),
            "pad_token": .string(specialTokens[2]),
            "clean_up_tokenization_spaces": .bool(false),
            "model_max_length": .int(modelMaxLength),
            "tokenizer_class": .string("LlamaTokenizerFast"),
            "chat_template": .string(chatTemplate),
        ] as [String: ConfigValue])
    }

    private static let chatTemplate = """
        {{ bos_token }}{%- for message in messages %}\
        {%- if message['role'] == 'system' %}{{ message['content'] }}\
        {%- elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}\
        {%- elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}\
        {%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{ '<｜Assistant｜>' }}{%- endif %}
        """

    private enum ConfigValue: Encodable {
        case bool(Bool), int(Int), string(String)

        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .bool(let value): try c.encode(value)
            case .int(let value): try c.encode(value)
            case .string(let value): try c.encode(value)
            }
        }
    }

    /// Sorted keys make the bytes deterministic despite dictionary hashing.
    private static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

extension PreTokenizerSpec {
    /// DeepSeek-V3's pre-tokenizer: digits in runs of at most three, CJK and
    /// kana runs, then words and punctuation, then GPT-2's byte mapping.
    static let deepseekV3 = PreTokenizerSpec.sequence([
        .split(.init(regex: #"\p{N}{1,3}"#, behavior: "Isolated")),
        .split(.init(regex: "[一-龥\u{3040}-ゟ゠-ヿ]+", behavior: "Isolated")),
        .split(.init(
            regex: ##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
            behavior: "Isolated")),
        .byteLevel(addPrefixSpace: false, useRegex: false),
    ])
}
