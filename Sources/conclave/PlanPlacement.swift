import ArgumentParser
import Cluster
import ExpertLoad
import Foundation
import Planner

struct PlanPlacement: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan-placement",
        abstract: "Plan where each MoE layer's experts go, with redundant replicas of the hot ones, from recorded expert load (DeepSeek's EPLB).",
        discussion: """
            Reads a file written by --record-expert-load (generate, serve). Per MoE layer: replicates the experts with the \
            highest load per replica --redundant times in all, then packs the replicas onto --expert-ranks ranks balancing \
            their load, each rank holding the same number. With --nodes and expert groups that divide among the nodes \
            (n_group), groups are first packed onto nodes (EPLB's hierarchical policy); otherwise the placement is global. \
            Prints each layer's predicted balancedness (mean tokens per expert rank ÷ max) with the default contiguous \
            layout and with the plan, and writes the layout file --layout takes: rank 0 the router, then the attention \
            ranks, then the expert ranks, as the default layout orders them.
            """)

    @Option(help: "The recorded expert load (JSON from --record-expert-load).")
    var load: String

    @Option(name: .customLong("expert-ranks"), help: "Expert ranks to place the experts on.")
    var expertRanks: Int

    @Option(help: "Replicas beyond one per expert, in all; n_routed_experts + redundant must be a multiple of --expert-ranks.")
    var redundant = 0

    @Option(help: "Nodes the expert ranks are spread over, in rank order (node k: the k-th block of expert ranks); with expert groups (n_group) that divide among them, each group's experts stay on one node.")
    var nodes = 1

    @Option(name: .customLong("attention-ranks"), help: "Attention ranks in the written layout (default: as the default layout has for its rank count).")
    var attentionRanks: Int?

    @Option(help: "Write the layout file here (configs/layouts/ format, one placement per MoE layer).")
    var out: String?

    @Flag(help: "Print the plan as JSON instead of a table.")
    var json = false

    func validate() throws {
        guard expertRanks >= 1 else { throw ValidationError("--expert-ranks must be ≥ 1") }
        guard redundant >= 0 else { throw ValidationError("--redundant must be ≥ 0") }
        guard nodes >= 1 else { throw ValidationError("--nodes must be ≥ 1") }
        if let attentionRanks, attentionRanks < 1 { throw ValidationError("--attention-ranks must be ≥ 1") }
    }

    func run() throws {
        let record: ExpertLoadRecord
        let placement: ExpertPlacement
        let layers: [ExpertPlacement.Layer]
        let layout: ClusterLayout
        do {
            record = try ExpertLoadRecord.read(URL(fileURLWithPath: load))
            placement = try ExpertPlacement(.init(routedExperts: record.routedExperts, expertRanks: expertRanks, redundant: redundant,
                                                  groups: record.groups, nodes: nodes))
            let plan = placement.plan(record)
            layers = plan.layers
            layout = try ClusterLayout.planned(placement: plan.overall.experts,
                                               layers: Dictionary(uniqueKeysWithValues: layers.map { ($0.layer!, $0.experts) }),
                                               attention: attentionRanks, routedExperts: record.routedExperts,
                                               moeLayers: record.layers.map(\.layer))
        } catch {
            log.error("\(error)")
            throw ExitCode(1)
        }
        let request = placement.request
        let policy = placement.policy == .hierarchical
            ? "hierarchical: \(record.groups) expert groups packed onto \(nodes) nodes, then replicated and packed within each node"
            : "global" + (nodes > 1 ? " (n_group \(record.groups) does not divide among \(nodes) nodes)" : "")
        if json {
            emit(try jsonText([
                "load": load, "model_fingerprint": record.modelFingerprint, "policy": placement.policy.rawValue,
                "expert_ranks": expertRanks, "redundant": redundant, "nodes": nodes, "replicas_per_rank": request.slotsPerRank,
                "world_size": layout.worldSize, "expert_world_ranks": layout.expertRanks,
                "layers": layers.map { l -> [String: Any] in
                    ["layer": l.layer!, "balancedness_before": l.defaultBalancedness, "balancedness_after": l.balancedness,
                     "replicas": l.replicas, "experts_by_rank": l.experts, "predicted_tokens_per_rank": l.load]
                },
            ]))
        } else {
            var text = "expert placement from \(load): model \(record.modelFingerprint), \(record.routedExperts) experts, "
            text += "\(record.layers.count) MoE layers, \(record.window.steps) steps, \(record.window.tokens) tokens\n"
            text += "\(expertRanks) expert ranks, \(redundant) redundant: \(record.routedExperts + redundant) replicas, "
            text += "\(request.slotsPerRank) per rank; \(policy)\n"
            text += "predicted balancedness (mean tokens per expert rank ÷ max; before: the default contiguous layout, no replicas)\n"
            var rows = [["layer", "before", "after", "replicated experts"]]
            for l in layers {
                let replicated = l.replicas.indices.filter { l.replicas[$0] > 1 }
                rows.append(["\(l.layer!)", String(format: "%.3f", l.defaultBalancedness), String(format: "%.3f", l.balancedness),
                             replicated.isEmpty ? "-" : ClusterLayout.ranges(replicated)])
            }
            let mean = { (values: [Double]) in values.reduce(0, +) / Double(max(values.count, 1)) }
            rows.append(["mean", String(format: "%.3f", mean(layers.map(\.defaultBalancedness))),
                         String(format: "%.3f", mean(layers.map(\.balancedness))), ""])
            text += ClusterLayout.columns(rows, rightAligned: [false, true, true, false])
            emit(text)
        }
        guard let out else { return }
        let description = "plan-placement from \(URL(fileURLWithPath: load).lastPathComponent) (model \(record.modelFingerprint)): "
            + "\(expertRanks) expert ranks, \(redundant) redundant, \(placement.policy.rawValue) policy; "
            + "every MoE layer placed on its own, \"experts\" planned from all layers' load together"
        do {
            try Data(layout.fileText(description: description).utf8).write(to: URL(fileURLWithPath: out))
        } catch {
            throw ValidationError("cannot write --out \(out): \((error as NSError).localizedDescription)")
        }
        log.info("wrote \(out): -np \(layout.worldSize) (router 0, attention \(ClusterLayout.ranges(layout.attentionRanks)), expert ranks \(ClusterLayout.ranges(layout.expertRanks))); run with --layout \(out)")
    }
}
