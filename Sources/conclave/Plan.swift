import ArgumentParser
import Checkpoint
import Foundation
import Planner

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Size a cluster for a model: layout, memory per node, predicted decode speed.",
        discussion: """
            Reads only config.json (no weights). Tries every attention-rank count and prints the layout with the \
            best predicted decode throughput that fits, or the shortfall in bytes when none does. \
            The cost model's constants come from --calibration (written by tools/calibrate-planner) or defaults.
            """)

    @Option(help: "A model's config.json (e.g. configs/models/deepseek-v3.json).")
    var config: String

    @Option(help: "Number of nodes.")
    var nodes: Int

    @Option(name: .customLong("node-memory"), help: "Memory per node, e.g. 512GiB.")
    var nodeMemory: String

    @Option(name: .customLong("node-bandwidth"), help: "Streaming memory bandwidth per node, e.g. 200GB/s.")
    var nodeBandwidth: String

    @Option(help: "Link rate per node, e.g. 25gbit or 100Gbps.")
    var link: String

    @Option(help: "Weight storage: fp8 (DeepSeek's release) or bf16.")
    var weights: WeightFormat = .fp8

    @Option(help: "Positions per sequence the latent cache must hold.")
    var context = 32768

    @Option(help: "Sequences served at once.")
    var concurrent = 64

    @Option(name: .customLong("reserve"), help: "Memory kept free per node for the OS, runtime and buffers.")
    var reserve = "8GiB"

    @Option(help: "Cost-model constants as JSON (from tools/calibrate-planner).")
    var calibration: String?

    @Flag(help: "Print the plan as JSON.")
    var json = false

    func validate() throws {
        guard nodes >= 1 else { throw ValidationError("--nodes must be ≥ 1") }
        guard context >= 1, concurrent >= 1 else { throw ValidationError("--context and --concurrent must be ≥ 1") }
    }

    func run() throws {
        let modelConfig = try ModelConfig(contentsOf: URL(fileURLWithPath: config))
        let model = try calibration.map { try JSONDecoder().decode(CostModel.self, from: Data(contentsOf: URL(fileURLWithPath: $0))) }
            ?? .defaults
        let spec = ClusterSpec(nodes: nodes, nodeMemory: try Quantity.bytes(nodeMemory), nodeBandwidth: try Quantity.bytesPerSecond(nodeBandwidth),
                               linkRate: try Quantity.linkRate(link), context: context, concurrent: concurrent,
                               reservedPerNode: try Quantity.bytes(reserve))
        let footprint = ModelFootprint(config: modelConfig, weights: weights)
        let plan: CapacityPlan
        do {
            plan = try CapacityPlan.best(for: spec, footprint: footprint, model: model)
        } catch {
            log.error("\(error)")
            throw ExitCode(1)
        }
        emit(json ? try jsonText(plan.jsonObject) : plan.text)
    }
}

extension WeightFormat: ExpressibleByArgument {}
