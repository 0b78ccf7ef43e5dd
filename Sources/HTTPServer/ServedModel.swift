import Checkpoint
import Foundation
import Tokenizer

/// What the front end knows of the model without its weights: enough to tokenize, apply
/// the chat template and check a request against the context before it reaches the engine.
public struct ServedModel: Sendable {
    /// The name clients put in `model`.
    public var name: String
    public var tokenizer: Tokenizer
    /// The chat format, or why the checkpoint's template is not usable (chat requests then fail).
    public var chatTemplate: Result<ChatTemplate, TokenizerError>
    public var eosTokenIds: Set<Int>
    /// The model's vocabulary (its embedding rows; may exceed the tokenizer's).
    public var vocabSize: Int
    /// Positions a request may use (prompt and completion): `--max-model-len`, at most the model's.
    public var contextLength: Int
    /// When the server started, for `GET /v1/models`.
    public var created: Int

    public init(directory: URL, name: String?, maxModelLength: Int?) throws {
        let config = try ModelConfig(contentsOf: directory.appendingPathComponent(Checkpoint.configFile))
        let tokenizer = try Tokenizer(directory: directory)
        self.tokenizer = tokenizer
        chatTemplate = Result { () throws(TokenizerError) in try ChatTemplate(config: tokenizer.config) }
        eosTokenIds = Set(config.eosTokenIds)
        vocabSize = config.vocabSize
        contextLength = min(maxModelLength ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings)
        self.name = name ?? directory.standardizedFileURL.lastPathComponent
        created = Int(Date().timeIntervalSince1970)
    }
}
