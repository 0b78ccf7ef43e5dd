/// One turn of a conversation.
public struct ChatMessage: Sendable, Equatable {
    public enum Role: String, Sendable {
        case system, user, assistant
    }

    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}

/// The core of DeepSeek-V3's chat template:
/// `<｜begin▁of▁sentence｜>{system}<｜User｜>{u}<｜Assistant｜>{a}<｜end▁of▁sentence｜>…<｜Assistant｜>`.
/// System messages are joined with a blank line and placed first, wherever
/// they occur, as DeepSeek's Jinja template does.
public struct ChatTemplate: Sendable {
    public var beginOfSentence: String
    public var endOfSentence: String
    public var userMarker: String
    public var assistantMarker: String

    public static let deepseek = ChatTemplate(
        beginOfSentence: "<｜begin▁of▁sentence｜>", endOfSentence: "<｜end▁of▁sentence｜>",
        userMarker: "<｜User｜>", assistantMarker: "<｜Assistant｜>")

    /// The checkpoint's own template (`chat_template` in tokenizer_config.json), which must
    /// be DeepSeek's: its bos/eos tokens come from the config and its role markers must
    /// appear in the template. Without a template, DeepSeek's.
    public init(config: TokenizerConfig) throws(TokenizerError) {
        var template = Self.deepseek
        if let bos = config.bosToken { template.beginOfSentence = bos }
        if let eos = config.eosToken { template.endOfSentence = eos }
        if let jinja = config.chatTemplate {
            for marker in [template.userMarker, template.assistantMarker] where !jinja.contains(marker) {
                throw .unsupportedChatTemplate(file: "tokenizer_config.json", missing: marker)
            }
        }
        self = template
    }

    public init(beginOfSentence: String, endOfSentence: String, userMarker: String, assistantMarker: String) {
        self.beginOfSentence = beginOfSentence
        self.endOfSentence = endOfSentence
        self.userMarker = userMarker
        self.assistantMarker = assistantMarker
    }

    /// The prompt text; encode it with `addBOS: false`, since it starts with
    /// the bos token itself. With `addGenerationPrompt` it ends with the
    /// assistant marker, where the model continues.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        let system = messages.filter { $0.role == .system }.map(\.content).joined(separator: "\n\n")
        var text = beginOfSentence + system
        for message in messages {
            switch message.role {
            case .system: continue
            case .user: text += userMarker + message.content
            case .assistant: text += assistantMarker + message.content + endOfSentence
            }
        }
        if addGenerationPrompt { text += assistantMarker }
        return text
    }
}
