import Checkpoint
import ControlPlane
import Engine
import Experts
import Foundation
import Kernels
import Routing
import Transport

/// Message tags on the world communicator.
enum Tag {
    static let stepResult = 1
    static let logits = 2
    static let stats = 3
    /// Hidden states of MoE layer `l` travel with tag `hiddenBase + l`.
    static let hiddenBase = 100
}

/// Rank 0's side of a step: it plans, broadcasts the plan, gates every MoE layer,
/// dispatches tokens to the expert ranks, combines their answers, returns each attention
/// rank its tokens, and collects the sampled tokens. It is the `StepExecutor` the
/// `Generator` drives, so requests, stop conditions and streaming are the same code as
/// in one process.
public final class RouterRank: StepExecutor, ReportsMoELayers, CountsExpertLoad {
    let world: Communicator
    let plane: ExpertDataPlane
    let layout: ClusterLayout
    let config: ModelConfig
    let gates: [Int: Gate]
    public let profile: AllToAllProfile
    /// World rank of each expert-communicator rank.
    let expertCommRanks: [Int]
    /// Per MoE layer, the expert-communicator ranks holding each routed expert (its replicas).
    let replicas: [Int: [[Int]]]
    private var routing = RoutingTable(topK: 1)
    private let hidden = Scratch(), combined = Scratch(), slots = Scratch()
    /// Routing of `routingLayer` in the last step, in plan token order.
    public var routingLayer: Int?
    public private(set) var lastRouting: [[Int]] = []
    private var layerSamples: [MoELayerSample] = []
    /// Keep per-step layer samples for `takeMoELayerSamples` (a server's metrics).
    public var collectsLayerSamples = false

    init(world: Communicator, expertComm: Communicator, expertCommRanks: [Int], layout: ClusterLayout, checkpoint: Checkpoint) throws {
        self.world = world
        self.layout = layout
        self.expertCommRanks = expertCommRanks
        config = checkpoint.config
        var replicas: [Int: [[Int]]] = [:]
        for l in 0..<config.numHiddenLayers where config.isMoELayer(l) {
            replicas[l] = layout.replicas(layer: l).map { $0.map { expertCommRanks.firstIndex(of: $0)! } }
        }
        self.replicas = replicas
        plane = ExpertDataPlane(comm: expertComm, router: expertCommRanks.firstIndex(of: layout.router)!,
                                hidden: config.hiddenSize, topK: config.numExpertsPerTok)
        var gates: [Int: Gate] = [:]
        for l in 0..<config.numHiddenLayers where config.isMoELayer(l) { gates[l] = try Gate(checkpoint: checkpoint, layer: l) }
        self.gates = gates
        profile = AllToAllProfile(worldSize: world.size, routedExperts: config.nRoutedExperts)
        routing = RoutingTable(topK: config.numExpertsPerTok)
    }

    public var vocabSize: Int { config.vocabSize }
    public var contextLength: Int { config.maxPositionEmbeddings }
    public var cachePools: Int { layout.attentionRanks.count }

    private var activity = RankActivity()
    private var tokensRun = 0

    /// Whether a step is under way: the other ranks are then mid-step, and only aborting
    /// the job (not a clean shutdown) can stop them.
    public private(set) var isInStep = false

    public func execute(_ plan: Engine.StepPlan) throws -> StepOutput {
        isInStep = true
        let output = try step(plan)
        isInStep = false
        if plan.tokenCount > 0 {
            activity.steps += 1
            tokensRun += plan.tokenCount
        }
        return output
    }

    private func step(_ plan: Engine.StepPlan) throws -> StepOutput {
        // The plan's cache pools are the attention ranks, in layout order.
        let wire = WirePlan(step: plan.step, work: plan.work.map { w in
            SequenceWork(sequenceId: w.sequence, attentionRank: layout.attentionRanks[w.pool],
                         phase: w.isDecode ? .decode : .prefill,
                         tokens: w.tokens, startPosition: w.startPosition, sample: w.samples,
                         sampling: w.joining,
                         returnLogits: w.returnsLogits, capacity: w.capacity, logprobs: w.logprobs)
        }, finishedSequences: plan.finished)
        _ = try world.broadcastWaitingIdly(bytes: ControlMessage.stepPlan(wire).encode(senderRank: world.rank), root: world.rank)
        var output = StepOutput()
        guard plan.tokenCount > 0 else { return output }

        // Rows per attention rank, in the order that rank runs them (its work in plan order).
        var rows: [(rank: Int, count: Int)] = []
        for a in layout.attentionRanks {
            let n = wire.work.filter { $0.attentionRank == a }.reduce(0) { $0 + $1.tokens.count }
            if n > 0 { rows.append((a, n)) }
        }
        for l in 0..<config.numHiddenLayers where config.isMoELayer(l) {
            try serve(layer: l, rows: rows, plan: wire)
        }
        let sampling = Set(plan.work.filter(\.samples).map(\.sequence))
        for (a, _) in rows {
            let (bytes, source) = try world.receive(from: a, tag: Tag.stepResult)
            guard case .stepResult(let result) = try ControlMessage.decode(bytes, from: source) else {
                throw ClusterError.unexpectedMessage(from: source, expected: "step result")
            }
            for t in result.tokens {
                if sampling.contains(t.sequenceId) {
                    output.tokens[t.sequenceId] = t.token
                    output.logprobs[t.sequenceId] = t.logprobs
                }
                if t.logitsRows > 0 {
                    var block = [Float](repeating: 0, count: t.logitsRows * vocabSize)
                    _ = try block.withUnsafeMutableBufferPointer { try world.receiveFloats(into: $0, from: a, tag: Tag.logits) }
                    output.logits[t.sequenceId] = block
                }
            }
        }
        return output
    }


    /// One MoE layer: gather the attention ranks' hidden states, gate, dispatch, combine, return.
    private func serve(layer l: Int, rows: [(rank: Int, count: Int)], plan: WirePlan) throws {
        let d = config.hiddenSize
        let total = rows.reduce(0) { $0 + $1.count }
        let x = hidden.floats(total * d), out = combined.floats(total * d)
        var at = 0
        for (a, n) in rows {
            _ = try world.receiveFloats(into: UnsafeMutableBufferPointer(start: x + at * d, count: n * d), from: a, tag: Tag.hiddenBase + l)
            profile.addBytes(from: a, to: world.rank, n * d * 4)
            at += n
        }
        activity.busy { gates[l]!.route(x, tokens: total, into: &routing) }
        if l == routingLayer { lastRouting = planOrder(rows: rows, plan: plan) }
        let replicas = self.replicas[l]!
        let dispatchLayout = DispatchLayout(routing: routing, ranks: expertCommRanks.count) { replicas[$0] }
        let handle = try plane.dispatch(x, routing: routing, layout: dispatchLayout)
        let outputs = slots.floats(total * routing.topK * d)
        let combine = try plane.combine(handle, into: outputs)
        routing.weights.withUnsafeBufferPointer {
            RoutedExperts.sum(outputs, weights: $0.baseAddress!, topK: routing.topK, tokens: total, hidden: d, into: out)
        }
        var rowsPerRank: [Int: Int] = [:], pairsPerRank: [Int: Int] = [:]
        for (r, n) in dispatchLayout.rows.enumerated() where expertCommRanks[r] != world.rank {
            rowsPerRank[expertCommRanks[r]] = n
            pairsPerRank[expertCommRanks[r]] = dispatchLayout.pairs[r]
            profile.addBytes(from: world.rank, to: expertCommRanks[r], n * plane.width * 4)
            profile.addBytes(from: expertCommRanks[r], to: world.rank, (dispatchLayout.pairs[r] * d + ExpertDataPlane.trailer) * 4)
        }
        if collectsLayerSamples {
            layerSamples.append(MoELayerSample(layer: l, dispatchSeconds: combine.dispatchSeconds, combineSeconds: combine.combineSeconds,
                                           rowsPerExpertRank: expertCommRanks.indices.filter { expertCommRanks[$0] != world.rank }
                                               .map { dispatchLayout.rows[$0] }))
        }
        profile.record(layer: l, dispatch: combine.dispatchSeconds, combine: combine.combineSeconds, expert: combine.expertSeconds,
                       dispatchBytes: handle.bytes, combineBytes: combine.bytes, tokens: total,
                       experts: Array(routing.experts[..<(total * routing.topK)]), rowsPerRank: rowsPerRank,
                       pairsPerRank: pairsPerRank)
        at = 0
        for (a, n) in rows {
            try world.sendFloats(UnsafeBufferPointer(start: out + at * d, count: n * d), to: a, tag: Tag.hiddenBase + l)
            profile.addBytes(from: world.rank, to: a, n * d * 4)
            at += n
        }
    }

    /// The gates' counts over the run: the profile's tokens per expert.
    public var expertLoad: ExpertLoadCounts {
        ExpertLoadCounts(steps: activity.steps, tokens: tokensRun, tokensPerExpert: profile.layers.mapValues(\.tokensPerExpert))
    }

    public func takeMoELayerSamples() -> [MoELayerSample] {
        defer { layerSamples.removeAll(keepingCapacity: true) }
        return layerSamples
    }

    /// This step's routing, reordered from attention-rank order back to plan order.
    private func planOrder(rows: [(rank: Int, count: Int)], plan: WirePlan) -> [[Int]] {
        var offsets: [Int: Int] = [:], at = 0
        for (a, n) in rows { offsets[a] = at; at += n }
        var out: [[Int]] = []
        for w in plan.work {
            let start = offsets[w.attentionRank]!
            for i in 0..<w.tokens.count { out.append(routing.sortedExperts(token: start + i)) }
            offsets[w.attentionRank] = start + w.tokens.count
        }
        return out
    }

    /// Ends the run on every rank; first times a raw all-to-all of this run's mean
    /// dispatch and combine sizes between the same ranks, as the profile's baseline.
    func shutdown(reason: String) throws {
        let rows = profile.meanRowsPerRank, pairs = profile.meanPairsPerRank
        let dispatchCounts = expertCommRanks.map { Int((rows[$0] ?? 0).rounded()) * plane.width }
        let combineCounts = expertCommRanks.map { $0 == world.rank ? 0 : Int((pairs[$0] ?? 0).rounded()) * plane.hidden + ExpertDataPlane.trailer }
        let repetitions = rows.isEmpty ? 0 : 30
        let message = Shutdown(reason: reason, baselineDispatchCounts: dispatchCounts, baselineCombineCounts: combineCounts,
                               baselineRepetitions: repetitions)
        _ = try world.broadcastWaitingIdly(bytes: ControlMessage.shutdown(message).encode(senderRank: world.rank), root: world.rank)
        if repetitions > 0 {
            profile.baseline = try RawAllToAll.time(comm: plane.comm, router: plane.router, shutdown: message)
        }
        var activities = [activity.stats(rank: world.rank)]
        for r in 0..<world.size where r != world.rank {
            let (bytes, source) = try world.receive(from: r, tag: Tag.stats)
            guard case .stats(let stats) = try ControlMessage.decode(bytes, from: source) else {
                throw ClusterError.unexpectedMessage(from: source, expected: "stats")
            }
            activities.append(stats)
        }
        profile.activity = activities.sorted { $0.rank < $1.rank }.map { ($0, layout.role(of: $0.rank).rawValue) }
    }
}

public enum ClusterError: Error, CustomStringConvertible {
    case unexpectedMessage(from: Int, expected: String)

    public var description: String {
        switch self {
        case .unexpectedMessage(let r, let e): "rank \(r) sent something other than the expected \(e)"
        }
    }
}
