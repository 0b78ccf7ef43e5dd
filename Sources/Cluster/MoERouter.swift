import Checkpoint
import ControlPlane
import Experts
import Foundation
import Kernels
import Routing
import Transport

/// One router's work in a step, on rank 0 and on every other router alike: for each MoE
/// layer, gather the hidden states of the attention ranks it serves, gate them, dispatch
/// them to the expert ranks, combine every (token, expert) output into its top-k slot, sum
/// each token's slots in the gate's order, and return each attention rank its rows.
final class MoERouter {
    let world: Communicator
    let plane: ExpertDataPlane
    let config: ModelConfig
    /// The model's MoE layers, ascending: every step serves each, so they are listed once here.
    let moeLayers: [Int]
    let gates: [Int: Gate]
    let profile: AllToAllProfile
    /// The attention ranks this router serves, ascending.
    let attentionRanks: [Int]
    /// World rank of each expert-communicator rank.
    let expertCommRanks: [Int]
    /// The expert-communicator ranks that are expert ranks (all but the routers), ascending.
    let expertIndices: [Int]
    /// Per MoE layer, the expert-communicator ranks holding each routed expert (its replicas).
    let replicas: [Int: [[Int]]]
    private(set) var routing = RoutingTable(topK: 1)
    var activity = RankActivity()
    private let hidden = Scratch(), combined = Scratch(), slots = Scratch()

    /// What serving one layer produced, for rank 0's extras (metrics, routing dumps).
    struct Served {
        let layout: DispatchLayout
        let combine: CombineResult
    }

    init(world: Communicator, expertComm: Communicator, expertCommRanks: [Int], layout: ClusterLayout, checkpoint: Checkpoint) throws {
        self.world = world
        self.expertCommRanks = expertCommRanks
        expertIndices = expertCommRanks.indices.filter { layout.role(of: expertCommRanks[$0]) == .expert }
        config = checkpoint.config
        moeLayers = config.moeLayers
        attentionRanks = layout.routers[world.rank] ?? []
        var replicas: [Int: [[Int]]] = [:]
        for l in moeLayers {
            replicas[l] = layout.replicas(layer: l).map { $0.map { expertCommRanks.firstIndex(of: $0)! } }
        }
        self.replicas = replicas
        plane = ExpertDataPlane(comm: expertComm, routers: layout.routerRanks.map { expertCommRanks.firstIndex(of: $0)! },
                                hidden: config.hiddenSize, topK: config.numExpertsPerTok)
        var gates: [Int: Gate] = [:]
        for l in moeLayers { gates[l] = try Gate(checkpoint: checkpoint, layer: l) }
        self.gates = gates
        profile = AllToAllProfile(worldSize: world.size, routedExperts: config.nRoutedExperts)
        routing = RoutingTable(topK: config.numExpertsPerTok)
    }

    /// Rows per attention rank this router serves, in the order that rank runs them (its work
    /// in plan order); ranks without work are left out.
    func rows(of plan: WirePlan) -> [(rank: Int, count: Int)] {
        attentionRanks.compactMap { a in
            let n = plan.work.filter { $0.attentionRank == a }.reduce(0) { $0 + $1.tokens.count }
            return n > 0 ? (a, n) : nil
        }
    }

    /// One MoE layer. Every router takes part in every layer's exchange, with no rows when its
    /// attention ranks have no work this step.
    @discardableResult
    func serve(layer l: Int, rows: [(rank: Int, count: Int)]) throws -> Served {
        let d = config.hiddenSize
        let total = rows.reduce(0) { $0 + $1.count }
        let x = hidden.floats(total * d), out = combined.floats(total * d)
        var at = 0
        for (a, n) in rows {
            _ = try world.receiveFloats(into: UnsafeMutableBufferPointer(start: x + at * d, count: n * d), from: a, tag: Tag.hiddenBase + l)
            profile.addBytes(from: a, to: world.rank, n * d * 4)
            at += n
        }
        if total > 0 {
            activity.busy { gates[l]!.route(x, tokens: total, into: &routing) }
        } else {
            routing.reset(tokens: 0)
        }
        let replicas = self.replicas[l]!
        let dispatchLayout = DispatchLayout(routing: routing, ranks: expertCommRanks.count) { replicas[$0] }
        let handle = try plane.dispatch(x, routing: routing, layout: dispatchLayout)
        let outputs = slots.floats(total * routing.topK * d)
        let combine = try plane.combine(handle, into: outputs)
        routing.weights.withUnsafeBufferPointer {
            RoutedExperts.sum(outputs, weights: $0.baseAddress!, topK: routing.topK, tokens: total, hidden: d, into: out)
        }
        var rowsPerRank: [Int: Int] = [:], pairsPerRank: [Int: Int] = [:]
        for r in expertIndices {
            let rank = expertCommRanks[r], n = dispatchLayout.rows[r], pairs = dispatchLayout.pairs[r]
            rowsPerRank[rank] = n
            pairsPerRank[rank] = pairs
            profile.addBytes(from: world.rank, to: rank, n * plane.width * 4)
            profile.addBytes(from: rank, to: world.rank, (pairs * d + ExpertDataPlane.trailer) * 4)
        }
        profile.record(layer: l, dispatch: combine.dispatchSeconds, combine: combine.combineSeconds, expert: combine.expertSeconds,
                       dispatchBytes: handle.bytes, combineBytes: combine.bytes, tokens: total,
                       experts: routing.experts, rowsPerRank: rowsPerRank,
                       pairsPerRank: pairsPerRank, attentionBytes: 2 * total * d * 4)
        at = 0
        for (a, n) in rows {
            try world.sendFloats(UnsafeBufferPointer(start: out + at * d, count: n * d), to: a, tag: Tag.hiddenBase + l)
            profile.addBytes(from: world.rank, to: a, n * d * 4)
            at += n
        }
        return Served(layout: dispatchLayout, combine: combine)
    }
}

/// A router other than rank 0: it takes no requests, but serves the MoE layers of its own
/// attention ranks' tokens in every step rank 0 plans, and reports its traffic at the end.
final class GroupRouterRank {
    let router: MoERouter
    /// The rank that plans (rank 0).
    let root: Int

    init(router: MoERouter, root: Int) {
        self.router = router
        self.root = root
    }

    func run() throws {
        let world = router.world
        while true {
            let bytes = try world.broadcastWaitingIdly(bytes: [], root: root)
            switch try ControlMessage.decode(bytes, from: root) {
            case .stepPlan(let plan):
                // The expert ranks' test: a step with tokens reaches every MoE layer.
                guard plan.work.contains(where: { !$0.tokens.isEmpty }) else { continue }
                let rows = router.rows(of: plan)
                if !rows.isEmpty { router.activity.steps += 1 }
                for l in router.moeLayers {
                    try router.serve(layer: l, rows: rows)
                }
            case .shutdown(let s):
                if s.baselineRepetitions > 0 { _ = try RawAllToAll.time(comm: router.plane.comm, router: router.plane.router, shutdown: s) }
                let traffic = try JSONEncoder().encode(router.profile.traffic(rank: world.rank, attentionRanks: router.attentionRanks))
                try world.send(bytes: Array(traffic), to: root, tag: Tag.routerTraffic)
                try world.send(bytes: ControlMessage.stats(router.activity.stats(rank: world.rank)).encode(senderRank: world.rank),
                               to: root, tag: Tag.stats)
                return
            default: throw ClusterError.unexpectedMessage(from: root, expected: "step plan or shutdown")
            }
        }
    }
}
