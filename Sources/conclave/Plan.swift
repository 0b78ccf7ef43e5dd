import ArgumentParser
import Checkpoint
import Cluster
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

    @Option(help: "Predict this rank layout (configs/layouts/ format) instead of searching for one; needs --hostfile.")
    var layout: String?

    @Option(help: "With --layout: the Open MPI hostfile that places its ranks (slots fill in order); its hosts are the nodes.")
    var hostfile: String?

    @Flag(help: "Print the plan as JSON.")
    var json = false

    func validate() throws {
        guard nodes >= 1 else { throw ValidationError("--nodes must be ≥ 1") }
        guard context >= 1, concurrent >= 1 else { throw ValidationError("--context and --concurrent must be ≥ 1") }
        guard (layout == nil) == (hostfile == nil) else { throw ValidationError("--layout and --hostfile go together") }
    }

    func run() throws {
        let modelConfig = try ModelConfig(contentsOf: URL(fileURLWithPath: config))
        let model = try calibration.map { try JSONDecoder().decode(CostModel.self, from: Data(contentsOf: URL(fileURLWithPath: $0))) }
            ?? .defaults
        let spec = ClusterSpec(nodes: nodes, nodeMemory: try Quantity.bytes(nodeMemory), nodeBandwidth: try Quantity.bytesPerSecond(nodeBandwidth),
                               linkRate: try Quantity.linkRate(link), context: context, concurrent: concurrent,
                               reservedPerNode: try Quantity.bytes(reserve))
        let footprint = ModelFootprint(config: modelConfig, weights: weights)
        if let layout, let hostfile {
            let placed = try Self.decodeLayout(layout: URL(fileURLWithPath: layout), hostfile: URL(fileURLWithPath: hostfile),
                                               routedExperts: modelConfig.nRoutedExperts)
            let p = CapacityPlan.predict(spec: spec, footprint: footprint, model: model, layout: placed)
            let line = String(format: "predicted decode for %@ on %@: %.1f tokens/s for %d sequences (%.2f ms per token): attention %.2f ms, experts %.2f ms, all-to-all %.2f ms (%.3f MB per step through the router's link)",
                              layout, hostfile, Double(concurrent) / p.stepSeconds, concurrent, p.stepSeconds * 1000, p.attentionSeconds * 1000,
                              p.expertSeconds * 1000, p.exchangeSeconds * 1000, p.exchangeBytes / 1e6)
            emit(json ? try jsonText(["tokens_per_second": Double(concurrent) / p.stepSeconds, "step_seconds": p.stepSeconds,
                                      "attention_seconds": p.attentionSeconds, "expert_seconds": p.expertSeconds,
                                      "exchange_seconds": p.exchangeSeconds, "exchange_bytes": p.exchangeBytes]) : line)
            return
        }
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

extension Plan {
    /// What a decode step's cost depends on in a given layout: ranks placed on the
    /// hostfile's hosts in slot order.
    static func decodeLayout(layout file: URL, hostfile: URL, routedExperts: Int) throws -> DecodeLayout {
        let hosts = try Hostfile(contentsOf: hostfile)
        let layout = try ClusterLayout.load(file, worldSize: try ClusterLayout.worldSize(of: file), routedExperts: routedExperts)
        guard hosts.totalSlots >= layout.worldSize else {
            throw ValidationError("\(hostfile.path) has \(hosts.totalSlots) slots; the layout has \(layout.worldSize) ranks")
        }
        func node(_ rank: Int) -> String { hosts.node(ofRank: rank)!.name }
        let routerNode = node(layout.router)
        var expertsPerNode: [String: Int] = [:]
        for r in layout.expertRanks { expertsPerNode[node(r), default: 0] += layout.experts(heldBy: r).count }
        return DecodeLayout(attentionRanks: layout.attentionRanks.count,
                            remoteAttentionRanks: layout.attentionRanks.filter { node($0) != routerNode }.count,
                            remoteExpertNodes: expertsPerNode.keys.filter { $0 != routerNode }.count,
                            busiestExpertShare: Double(expertsPerNode.values.max() ?? 0) / Double(routedExperts))
    }
}

extension WeightFormat: ExpressibleByArgument {}
