/// tokenizer.json as far as this tokenizer reads and writes it; keys mirror
/// the Hugging Face file. Components outside the supported set decode to a
/// `TokenizerFile.Unsupported` error naming them.
struct TokenizerFile: Codable {
    var addedTokens: [AddedToken]
    /// Refused at load unless it leaves text unchanged (DeepSeek's files have
    /// an empty Sequence).
    var normalizer: NormalizerSpec?
    var preTokenizer: PreTokenizerSpec?
    var decoder: Component?
    var model: BPEModelSpec

    /// A component the file names but this tokenizer does not implement.
    struct Unsupported: Error {
        let component: String
    }

    /// Any component, seen only through its "type".
    struct Component: Codable {
        var type: String
    }

    /// A normalizer, seen through its "type" and, for a Sequence, its steps.
    struct NormalizerSpec: Codable {
        var type: String
        var normalizers: [NormalizerSpec]?

        /// A Sequence whose steps (if any) are all identities.
        var isIdentity: Bool {
            type == "Sequence" && (normalizers ?? []).allSatisfy(\.isIdentity)
        }

        /// The first step that changes text, for the error message.
        var firstNonIdentity: String {
            guard type == "Sequence" else { return type }
            return (normalizers ?? []).first { !$0.isIdentity }?.firstNonIdentity ?? type
        }
    }

    /// The only decoder supported, written as DeepSeek-V3 writes it.
    private struct ByteLevelDecoder: Encodable {
        let type = "ByteLevel"
        let addPrefixSpace = true
        let trimOffsets = true
        let useRegex = true

        enum CodingKeys: String, CodingKey {
            case type
            case addPrefixSpace = "add_prefix_space"
            case trimOffsets = "trim_offsets"
            case useRegex = "use_regex"
        }
    }

    struct AddedToken: Codable {
        var id: Int
        var content: String
        var singleWord = false
        var lstrip = false
        var rstrip = false
        var normalized = false
        var special = false

        enum CodingKeys: String, CodingKey {
            case id, content, lstrip, rstrip, normalized, special
            case singleWord = "single_word"
        }

        init(id: Int, content: String, special: Bool) {
            self.id = id
            self.content = content
            self.special = special
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(Int.self, forKey: .id)
            content = try c.decode(String.self, forKey: .content)
            singleWord = try c.decodeIfPresent(Bool.self, forKey: .singleWord) ?? false
            lstrip = try c.decodeIfPresent(Bool.self, forKey: .lstrip) ?? false
            rstrip = try c.decodeIfPresent(Bool.self, forKey: .rstrip) ?? false
            normalized = try c.decodeIfPresent(Bool.self, forKey: .normalized) ?? false
            special = try c.decodeIfPresent(Bool.self, forKey: .special) ?? false
        }
    }

    // Explicit snake_case keys: a key strategy would also rewrite vocab entries.
    enum CodingKeys: String, CodingKey {
        case version, truncation, padding, normalizer, decoder, model
        case addedTokens = "added_tokens"
        case preTokenizer = "pre_tokenizer"
        case postProcessor = "post_processor"
    }

    /// A file with no normalizer and the ByteLevel decoder.
    init(addedTokens: [AddedToken], preTokenizer: PreTokenizerSpec, model: BPEModelSpec) {
        self.addedTokens = addedTokens
        self.preTokenizer = preTokenizer
        self.decoder = Component(type: "ByteLevel")
        self.model = model
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        addedTokens = try c.decodeIfPresent([AddedToken].self, forKey: .addedTokens) ?? []
        normalizer = try c.decodeIfPresent(NormalizerSpec.self, forKey: .normalizer)
        preTokenizer = try c.decodeIfPresent(PreTokenizerSpec.self, forKey: .preTokenizer)
        self.decoder = try c.decodeIfPresent(Component.self, forKey: .decoder)
        model = try c.decode(BPEModelSpec.self, forKey: .model)
    }

    /// Writes every top-level key, nulls included, as the Hugging Face loader expects.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("1.0", forKey: .version)
        try c.encodeNil(forKey: .truncation)
        try c.encodeNil(forKey: .padding)
        try c.encode(addedTokens, forKey: .addedTokens)
        try c.encode(normalizer, forKey: .normalizer)
        try c.encode(preTokenizer, forKey: .preTokenizer)
        try c.encodeNil(forKey: .postProcessor)
        try c.encode(ByteLevelDecoder(), forKey: .decoder)
        try c.encode(model, forKey: .model)
    }
}

/// The "model" object. Only BPE is supported; merges may be "a b" strings
/// (DeepSeek, older files) or ["a", "b"] pairs (tokenizers ≥ 0.20).
struct BPEModelSpec: Codable {
    var vocab: [String: Int]
    var merges: [(String, String)]
    var unkToken: String?
    var ignoreMerges = false

    enum CodingKeys: String, CodingKey {
        case type, dropout, vocab, merges
        case unkToken = "unk_token"
        case continuingSubwordPrefix = "continuing_subword_prefix"
        case endOfWordSuffix = "end_of_word_suffix"
        case fuseUnk = "fuse_unk"
        case byteFallback = "byte_fallback"
        case ignoreMerges = "ignore_merges"
    }

    init(vocab: [String: Int], merges: [(String, String)]) {
        self.vocab = vocab
        self.merges = merges
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decodeIfPresent(String.self, forKey: .type) ?? "BPE"
        guard type == "BPE" else { throw TokenizerFile.Unsupported(component: "model \(type)") }
        if try c.decodeIfPresent(Bool.self, forKey: .byteFallback) == true {
            throw TokenizerFile.Unsupported(component: "BPE byte_fallback")
        }
        for key in [CodingKeys.continuingSubwordPrefix, .endOfWordSuffix] {
            if let affix = try c.decodeIfPresent(String.self, forKey: key), !affix.isEmpty {
                throw TokenizerFile.Unsupported(component: "BPE \(key.stringValue) \"\(affix)\"")
            }
        }
        vocab = try c.decode([String: Int].self, forKey: .vocab)
        unkToken = try c.decodeIfPresent(String.self, forKey: .unkToken)
        ignoreMerges = try c.decodeIfPresent(Bool.self, forKey: .ignoreMerges) ?? false
        if let pairs = try? c.decode([[String]].self, forKey: .merges) {
            merges = try pairs.enumerated().map { index, pair in
                guard pair.count == 2 else { throw Self.badMerge(index, pair.joined(separator: " ")) }
                return (pair[0], pair[1])
            }
        } else {
            let lines = try c.decodeIfPresent([String].self, forKey: .merges) ?? []
            merges = try lines.enumerated().map { index, line in
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw Self.badMerge(index, line) }
                return (String(parts[0]), String(parts[1]))
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("BPE", forKey: .type)
        try c.encodeNil(forKey: .dropout)
        try c.encode(unkToken, forKey: .unkToken)
        try c.encodeNil(forKey: .continuingSubwordPrefix)
        try c.encodeNil(forKey: .endOfWordSuffix)
        try c.encode(false, forKey: .fuseUnk)
        try c.encode(false, forKey: .byteFallback)
        try c.encode(ignoreMerges, forKey: .ignoreMerges)
        try c.encode(vocab, forKey: .vocab)
        try c.encode(merges.map { "\($0.0) \($0.1)" }, forKey: .merges)
    }

    private static func badMerge(_ index: Int, _ text: String) -> DecodingError {
        DecodingError.dataCorrupted(.init(
            codingPath: [CodingKeys.merges],
            debugDescription: "merge #\(index) \"\(text)\" is not a pair of tokens"))
    }
}

/// The "pre_tokenizer" object, recursively.
indirect enum PreTokenizerSpec: Codable {
    case sequence([PreTokenizerSpec])
    case split(SplitSpec)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case digits(individual: Bool)

    struct SplitSpec: Codable {
        /// {"Regex": pattern} or {"String": literal}.
        var pattern: [String: String]
        var behavior: String
        var invert = false

        enum CodingKeys: String, CodingKey {
            case pattern, behavior, invert
        }

        init(regex: String, behavior: String) {
            pattern = ["Regex": regex]
            self.behavior = behavior
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            pattern = try c.decode([String: String].self, forKey: .pattern)
            behavior = try c.decode(String.self, forKey: .behavior)
            invert = try c.decodeIfPresent(Bool.self, forKey: .invert) ?? false
        }
    }

    enum CodingKeys: String, CodingKey {
        case type, pretokenizers
        case addPrefixSpace = "add_prefix_space"
        case trimOffsets = "trim_offsets"
        case useRegex = "use_regex"
        case individualDigits = "individual_digits"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "Sequence":
            self = .sequence(try c.decode([PreTokenizerSpec].self, forKey: .pretokenizers))
        case "Split":
            self = .split(try SplitSpec(from: decoder))
        case "ByteLevel":
            self = .byteLevel(
                addPrefixSpace: try c.decodeIfPresent(Bool.self, forKey: .addPrefixSpace) ?? true,
                useRegex: try c.decodeIfPresent(Bool.self, forKey: .useRegex) ?? true)
        case "Digits":
            self = .digits(individual: try c.decodeIfPresent(Bool.self, forKey: .individualDigits) ?? false)
        default:
            throw TokenizerFile.Unsupported(component: "pre_tokenizer \(type)")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .sequence(let steps):
            try c.encode("Sequence", forKey: .type)
            try c.encode(steps, forKey: .pretokenizers)
        case .split(let split):
            try c.encode("Split", forKey: .type)
            try split.encode(to: encoder)
        case .byteLevel(let addPrefixSpace, let useRegex):
            try c.encode("ByteLevel", forKey: .type)
            try c.encode(addPrefixSpace, forKey: .addPrefixSpace)
            try c.encode(true, forKey: .trimOffsets)
            try c.encode(useRegex, forKey: .useRegex)
        case .digits(let individual):
            try c.encode("Digits", forKey: .type)
            try c.encode(individual, forKey: .individualDigits)
        }
    }
}

/// tokenizer_config.json: which added tokens play bos/eos, and defaults.
public struct TokenizerConfig: Sendable, Decodable {
    public var bosToken: String?
    public var eosToken: String?
    public var addBOSToken: Bool
    public var addEOSToken: Bool
    /// Absent, or absurdly large (HF writes 1e30 for "unbounded"), means nil.
    public var modelMaxLength: Int?
    /// The Jinja chat template, as the checkpoint ships it.
    public var chatTemplate: String?

    enum CodingKeys: String, CodingKey {
        case bosToken = "bos_token"
        case eosToken = "eos_token"
        case addBosToken = "add_bos_token"
        case addEosToken = "add_eos_token"
        case modelMaxLength = "model_max_length"
        case chatTemplate = "chat_template"
    }

    /// A token field is a bare string or an AddedToken object with "content".
    private struct TokenField: Decodable {
        let content: String
        init(from decoder: any Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self) {
                content = text
            } else {
                content = try decoder.container(keyedBy: Key.self).decode(String.self, forKey: .content)
            }
        }
        enum Key: String, CodingKey { case content }
    }

    public init(bosToken: String? = nil, eosToken: String? = nil, addBOSToken: Bool = true,
                addEOSToken: Bool = false, modelMaxLength: Int? = nil, chatTemplate: String? = nil) {
        self.chatTemplate = chatTemplate
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.addBOSToken = addBOSToken
        self.addEOSToken = addEOSToken
        self.modelMaxLength = modelMaxLength
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        bosToken = try c.decodeIfPresent(TokenField.self, forKey: .bosToken)?.content
        eosToken = try c.decodeIfPresent(TokenField.self, forKey: .eosToken)?.content
        addBOSToken = try c.decodeIfPresent(Bool.self, forKey: .addBosToken) ?? true
        addEOSToken = try c.decodeIfPresent(Bool.self, forKey: .addEosToken) ?? false
        let length = try c.decodeIfPresent(Double.self, forKey: .modelMaxLength)
        modelMaxLength = length.flatMap { $0 < 1e15 ? Int($0) : nil }
        // Some checkpoints ship a list of named templates; the default one is the chat template.
        chatTemplate = (try? c.decodeIfPresent(String.self, forKey: .chatTemplate))
            ?? (try? c.decodeIfPresent([NamedTemplate].self, forKey: .chatTemplate))?.first { $0.name == "default" }?.template
    }

    private struct NamedTemplate: Decodable {
        let name: String
        let template: String
    }
}
