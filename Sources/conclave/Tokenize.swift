import ArgumentParser
import Tokenizer

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode text to token ids or decode ids to text with the model's tokenizer (reads only the tokenizer files).")

    @OptionGroup var model: ModelOption

    @Option(help: "Text to encode; prints {\"ids\": [...]}.")
    var text: String?

    @Option(help: "Comma-separated ids to decode; prints {\"text\": \"...\"}.")
    var ids: String?

    @Flag(name: .customLong("add-bos"), help: "Prepend the beginning-of-sequence token when encoding.")
    var addBOS = false

    func validate() throws {
        guard (text == nil) != (ids == nil) else { throw ValidationError("give exactly one of --text or --ids") }
    }

    func run() throws {
        let tokenizer = try Tokenizer(directory: model.url)
        if let text {
            emit(try jsonText(["ids": tokenizer.encode(text, addBOS: addBOS)]))
        } else if let ids {
            emit(try jsonText(["text": try tokenizer.decode(try parseIds(ids, option: "--ids"), skipSpecial: false)]))
        }
    }
}
