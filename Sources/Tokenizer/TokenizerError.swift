/// Why a tokenizer could not be loaded, built or used. Each message names the
/// file or value at fault so the user can fix it.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case missingFile(path: String)
    case unreadableFile(path: String, reason: String)
    case malformedJSON(file: String, reason: String)
    case unsupported(component: String, file: String)
    case unsupportedChatTemplate(file: String, missing: String)
    case invalidRegex(pattern: String, file: String, reason: String)
    case missingSpecialToken(role: String, file: String)
    case unknownTokenId(Int, vocabSize: Int)
    case vocabSizeTooSmall(requested: Int, minimum: Int)

    public var description: String {
        switch self {
        case .missingFile(let path):
            "tokenizer file \(path) does not exist; a model directory needs a Hugging Face tokenizer.json"
        case .unreadableFile(let path, let reason):
            "cannot read \(path): \(reason)"
        case .malformedJSON(let file, let reason):
            "\(file) is not a valid tokenizer file: \(reason)"
        case .unsupported(let component, let file):
            "\(file) uses \(component), which this tokenizer does not implement; "
                + "supported: BPE model, no normalizer (or an empty Sequence), Sequence/Split/ByteLevel/Digits pre-tokenizers, ByteLevel decoder"
        case .unsupportedChatTemplate(let file, let missing):
            "\(file) has a chat_template that is not DeepSeek's (it never writes \(missing)); only DeepSeek's chat format is implemented"
        case .invalidRegex(let pattern, let file, let reason):
            "\(file) has a Split regex that does not compile (\(reason)): \(pattern)"
        case .missingSpecialToken(let role, let file):
            "\(file) defines no \(role) token; set \(role)_token in tokenizer_config.json"
        case .unknownTokenId(let id, let vocabSize):
            "cannot decode token id \(id): the vocabulary has ids 0..<\(vocabSize)"
        case .vocabSizeTooSmall(let requested, let minimum):
            "vocabulary size \(requested) is too small: a byte-level tokenizer needs at least \(minimum) (256 bytes plus special tokens)"
        }
    }
}
