import Foundation

/// A Hugging Face byte-level BPE tokenizer, loaded from a model directory's
/// tokenizer.json (and tokenizer_config.json when present). Produces the same
/// ids as the `tokenizers` library for DeepSeek-V3/V2 and GPT-2 style files.
/// The file's post_processor is not applied: `encode(_:addBOS:)` decides
/// whether bos is prepended.
public final class Tokenizer: Sendable {
    public let bosId: Int
    public let eosId: Int
    /// One past the largest id, counting added tokens.
    public let vocabSize: Int
    public let config: TokenizerConfig

    private let addedTokens: AddedTokenSplitter
    private let preTokenizer: PreTokenizer
    private let model: BytePairEncoder
    private let addedIds: [String: Int]
    private let specialIds: Set<Int>
    /// By id; nil where the vocabulary has a gap.
    private let tokens: [String?]
    private let tokenBytes: [[UInt8]?]

    /// Fallbacks when there is no tokenizer_config.json naming bos/eos.
    static let deepseekBOS = "<｜begin▁of▁sentence｜>"
    static let deepseekEOS = "<｜end▁of▁sentence｜>"

    public convenience init(directory: URL) throws {
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        let configJSON = FileManager.default.fileExists(atPath: configURL.path) ? try Self.read(configURL) : nil
        try self.init(tokenizerJSON: try Self.read(tokenizerURL), configJSON: configJSON,
                      tokenizerFile: tokenizerURL.path, configFile: configURL.path)
    }

    /// `tokenizerFile` and `configFile` only name the sources in errors.
    public init(tokenizerJSON: Data, configJSON: Data? = nil,
                tokenizerFile: String = "tokenizer.json", configFile: String = "tokenizer_config.json") throws {
        let file: TokenizerFile
        let preTokenizer: PreTokenizer
        let model: BytePairEncoder
        do {
            file = try JSONDecoder().decode(TokenizerFile.self, from: tokenizerJSON)
            preTokenizer = try PreTokenizer(file.preTokenizer)
            model = try BytePairEncoder(file.model)
        } catch let error as TokenizerFile.Unsupported {
            throw TokenizerError.unsupported(component: error.component, file: tokenizerFile)
        } catch let error as PreTokenizer.InvalidRegex {
            throw TokenizerError.invalidRegex(pattern: error.pattern, file: tokenizerFile, reason: error.reason)
        } catch let error as BytePairEncoder.Malformed {
            throw TokenizerError.malformedJSON(file: tokenizerFile, reason: error.reason)
        } catch {
            throw TokenizerError.malformedJSON(file: tokenizerFile, reason: Self.explain(error))
        }
        if let normalizer = file.normalizer, !normalizer.isIdentity {
            throw TokenizerError.unsupported(component: "normalizer \(normalizer.firstNonIdentity)", file: tokenizerFile)
        }
        guard let decoder = file.decoder, decoder.type == "ByteLevel" else {
            throw TokenizerError.unsupported(component: "decoder \(file.decoder?.type ?? "null")", file: tokenizerFile)
        }
        for token in file.addedTokens where token.lstrip || token.rstrip || token.singleWord {
            throw TokenizerError.unsupported(
                component: "added token \(token.content) with lstrip/rstrip/single_word", file: tokenizerFile)
        }

        var config = TokenizerConfig()
        if let configJSON {
            do {
                config = try JSONDecoder().decode(TokenizerConfig.self, from: configJSON)
            } catch {
                throw TokenizerError.malformedJSON(file: configFile, reason: Self.explain(error))
            }
        }

        let addedIds = Dictionary(file.addedTokens.map { ($0.content, $0.id) }, uniquingKeysWith: { _, last in last })
        let ids = Array(model.vocab.values) + file.addedTokens.map(\.id)
        let largestId = ids.max() ?? -1
        // Ids index a table: a negative or absurd id is a broken file, not a reason to crash or exhaust memory.
        if let bad = ids.first(where: { $0 < 0 || $0 > 16 * max(ids.count, 1) }) {
            throw TokenizerError.malformedJSON(file: tokenizerFile, reason: "token id \(bad) is out of range for \(ids.count) tokens")
        }
        var tokens = [String?](repeating: nil, count: largestId + 1)
        for (token, id) in model.vocab { tokens[id] = token }
        for token in file.addedTokens { tokens[token.id] = token.content }

        func resolve(_ name: String?, fallback: String, role: String) throws -> Int {
            let content = name ?? fallback
            guard let id = addedIds[content] ?? model.vocab[content] else {
                throw TokenizerError.missingSpecialToken(role: role, file: configJSON == nil ? tokenizerFile : configFile)
            }
            return id
        }
        bosId = try resolve(config.bosToken, fallback: Self.deepseekBOS, role: "bos")
        eosId = try resolve(config.eosToken, fallback: Self.deepseekEOS, role: "eos")

        self.config = config
        self.preTokenizer = preTokenizer
        self.model = model
        self.addedIds = addedIds
        self.addedTokens = AddedTokenSplitter(file.addedTokens.map { ($0.content, $0.id) })
        self.specialIds = Set(file.addedTokens.filter(\.special).map(\.id))
        self.tokens = tokens
        self.tokenBytes = tokens.map { $0.map(ByteLevel.decode) }
        self.vocabSize = tokens.count
    }

    private static func read(_ url: URL) throws -> Data {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TokenizerError.missingFile(path: url.path)
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw TokenizerError.unreadableFile(path: url.path, reason: error.localizedDescription)
        }
    }

    /// A decoding error as "at model.vocab: expected ...", not Foundation's dump.
    private static func explain(_ error: any Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return keys.isEmpty ? "" : "at \(keys.joined(separator: ".")): "
        }
        switch error as? DecodingError {
        case .dataCorrupted(let context):
            return path(context) + context.debugDescription + (context.underlyingError.map { " (\($0))" } ?? "")
        case .keyNotFound(let key, let context):
            return path(context) + "missing key \"\(key.stringValue)\""
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return path(context) + context.debugDescription
        default:
            return "\(error)"
        }
    }

    // MARK: Encoding and decoding

    /// Token ids for `text`. Added tokens written in the text (such as
    /// `<｜User｜>`) become their ids; everything else is byte-level BPE.
    public func encode(_ text: String, addBOS: Bool) -> [Int] {
        var ids: [Int] = addBOS ? [bosId] : []
        ids.reserveCapacity(text.utf8.count / 3 + 1)
        for segment in addedTokens.segments(text) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let span):
                for piece in preTokenizer.pieces(span) { model.encode(piece, into: &ids) }
            }
        }
        return ids
    }

    /// The text of `ids`; byte sequences that are not valid UTF-8 become U+FFFD.
    public func decode(_ ids: [Int], skipSpecial: Bool) throws -> String {
        var bytes: [UInt8] = []
        for id in ids { bytes += try self.bytes(of: id, skipSpecial: skipSpecial) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The bytes one id decodes to; empty for a skipped special token.
    public func bytes(of id: Int, skipSpecial: Bool) throws -> [UInt8] {
        guard id >= 0, id < tokenBytes.count, let bytes = tokenBytes[id] else {
            throw TokenizerError.unknownTokenId(id, vocabSize: vocabSize)
        }
        return skipSpecial && specialIds.contains(id) ? [] : bytes
    }

    /// The id of a token as written in the vocabulary (byte-level form for
    /// model tokens, e.g. "Ġthe"), or of an added token.
    public func id(of token: String) -> Int? {
        addedIds[token] ?? model.vocab[token]
    }

    public func token(of id: Int) -> String? {
        id >= 0 && id < tokens.count ? tokens[id] : nil
    }
}
