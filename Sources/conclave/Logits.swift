import ArgumentParser
import Attention
import Checkpoint
import Foundation
import Model

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the logits of every position of a token sequence as JSON: the debugging tool for numerics.")

    @OptionGroup var model: ModelOption

    @Option(help: "Comma-separated token ids.")
    var tokens: String

    @Option(name: .customLong("routing-layer"), help: "Also print the experts each token is routed to at this MoE layer.")
    var routingLayer: Int?

    @Option(help: "MLA algorithm: auto (naive for prompts, absorbed for single tokens), naive or absorbed.")
    var attention: AttentionChoice = .auto

    func run() throws {
        let ids = try parseIds(tokens, option: "--tokens")
        guard !ids.isEmpty else { throw ValidationError("--tokens is empty") }
        let checkpoint = try Checkpoint(directory: model.url)
        let c = checkpoint.config
        if let bad = ids.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
            throw ValidationError("token id \(bad) is outside the vocabulary (0..<\(c.vocabSize))")
        }
        if let layer = routingLayer, !(0..<c.numHiddenLayers).contains(layer) || !c.isMoELayer(layer) {
            throw ValidationError("--routing-layer \(layer) is not a MoE layer of this model")
        }
        let deepseek = try DeepseekModel(checkpoint: checkpoint)
        deepseek.attentionAlgorithm = attention.algorithm
        let cache = deepseek.makeCache(capacity: ids.count)
        let logits = try deepseek.forward(tokens: ids, batch: AttentionBatch(slices: [.init(cache: cache, first: 0, count: ids.count)]),
                                      logitRows: Array(ids.indices))
        var out: [String: Any] = [
            "tokens": ids,
            "logits": ids.indices.map { Array(logits[$0 * c.vocabSize ..< ($0 + 1) * c.vocabSize]) },
        ]
        if let layer = routingLayer {
            out["routing"] = ["layer": layer, "experts": deepseek.lastRouting(layer: layer) ?? []]
        }
        emit(try jsonText(out))
    }
}

enum AttentionChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, naive, absorbed

    var algorithm: MultiHeadLatentAttention.Algorithm? {
        switch self {
        case .auto: nil
        case .naive: .naive
        case .absorbed: .absorbed
        }
    }
}
