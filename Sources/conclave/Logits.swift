import ArgumentParser
import Attention
import Checkpoint
import Engine
import Foundation
import Model
import Transport

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the logits of every position of a token sequence as JSON: the debugging tool for numerics.")

    @OptionGroup var model: ModelOption
    @OptionGroup var numerics: NumericsOption

    @Option(help: "Comma-separated token ids.")
    var tokens: String

    @Option(name: .customLong("routing-layer"), help: "Also print the experts each token is routed to at this MoE layer.")
    var routingLayer: Int?

    @OptionGroup var cluster: ClusterArguments

    func run() throws {
        numerics.apply()
        let ids = try parseIds(tokens, option: "--tokens")
        guard !ids.isEmpty else { throw ValidationError("--tokens is empty") }
        let c = try ModelConfig(contentsOf: model.url.appendingPathComponent(Checkpoint.configFile))
        if let bad = ids.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
            throw ValidationError("token id \(bad) is outside the vocabulary (0..<\(c.vocabSize))")
        }
        if let layer = routingLayer, !(0..<c.numHiddenLayers).contains(layer) || !c.isMoELayer(layer) {
            throw ValidationError("--routing-layer \(layer) is not a MoE layer of this model")
        }
        try Executor.run(model: model.url, cluster: cluster, configure: configure) { executor in
            let step = StepPlan(step: 0, work: [StepPlan.Work(sequence: 0, tokens: ids, startPosition: 0, samples: false,
                                                              returnsLogits: true, joining: .greedy, capacity: ids.count)])
            let logits = try executor.stepExecutor.execute(step).logits[0]!
            var out: [String: Any] = [
                "tokens": ids,
                "logits": ids.indices.map { Array(logits[$0 * c.vocabSize ..< ($0 + 1) * c.vocabSize]) },
            ]
            if let layer = routingLayer {
                let experts: [[Int]] = switch executor {
                case .local(let runner): runner.model.lastRouting(layer: layer) ?? []
                case .cluster(let session): session.router.lastRouting
                }
                out["routing"] = ["layer": layer, "experts": experts]
            }
            _ = try executor.stepExecutor.execute(StepPlan(step: 1, work: [], finished: [0]))
            emit(try jsonText(out))
        }
    }

    /// Only the router needs telling which layer's routing to keep; one process keeps every layer's.
    private func configure(_ executor: Executor) {
        if case .cluster(let session) = executor { session.router.routingLayer = routingLayer }
    }
}
