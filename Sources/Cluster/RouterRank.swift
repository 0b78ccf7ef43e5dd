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
    /// A router's `RouterTraffic` (JSON), sent to rank 0 at shutdown by every other router.
    static let routerTraffic = 4
    /// Hidden states of MoE layer `l` travel with tag `hiddenBase + l`.
    static let hiddenBase = 100
}

/// Rank 0's side of a step: it plans, broadcasts the plan, gates every MoE layer of the
/// attention ranks it serves (all of them with one router; `GroupRouterRank`s serve the
/// others), dispatches tokens to the expert ranks, combines their answers, returns each
/// attention rank its tokens, and collects every attention rank's sampled tokens. It is the `StepExecutor` the
/// `Generator` drives, so requests, stop conditions and streaming are the same code as
/// in one process.
public final class RouterRank: StepExecutor, ReportsMoELayers, CountsExpertLoad {
    let world: Communicator
    public let layout: ClusterLayout
    let config: ModelConfig
    /// Gating, dispatch and combine for the attention ranks rank 0 serves.
    let moe: MoERouter
    public var profile: AllToAllProfile { moe.profile }
    /// Routing of `routingLayer` in the last step, in plan token order (tokens of attention
    /// ranks another router serves: empty).
    public var routingLayer: Int?
    public private(set) var lastRouting: [[Int]] = []
    private var layerSamples: [MoELayerSample] = []
    /// Keep per-step layer samples for `takeMoELayerSamples` (a server's metrics).
    public var collectsLayerSamples = false

    init(world: Communicator, expertComm: Communicator, expertCommRanks: [Int], layout: ClusterLayout, checkpoint: Checkpoint) throws {
        self.world = world
        self.layout = layout
        config = checkpoint.config
        moe = try MoERouter(world: world, expertComm: expertComm, expertCommRanks: expertCommRanks, layout: layout, checkpoint: checkpoint)
    }

    public var vocabSize: Int { config.vocabSize }
    public var contextLength: Int { config.maxPositionEmbeddings }
    public var cachePools: Int { layout.attentionRanks.count }

    private var tokensRun = 0

    /// Whether a step is under way: the other ranks are then mid-step, and only aborting
    /// the job (not a clean shutdown) can stop them.
    public private(set) var isInStep = false

    public func execute(_ plan: Engine.StepPlan) throws -> StepOutput {
        isInStep = true
        let output = try step(plan)
        isInStep = false
        if plan.tokenCount > 0 {
            moe.activity.steps += 1
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

        // Rows per attention rank rank 0 serves; every attention rank with work returns its results here.
        let rows = moe.rows(of: wire)
        for l in moe.moeLayers {
            let served = try moe.serve(layer: l, rows: rows)
            if l == routingLayer { lastRouting = planOrder(rows: rows, plan: wire) }
            if collectsLayerSamples {
                layerSamples.append(MoELayerSample(layer: l, dispatchSeconds: served.combine.dispatchSeconds,
                                                   combineSeconds: served.combine.combineSeconds,
                                                   rowsPerExpertRank: moe.expertIndices.map { served.layout.rows[$0] }))
            }
        }
        let working = layout.attentionRanks.filter { a in wire.work.contains { $0.attentionRank == a && !$0.tokens.isEmpty } }
        let sampling = Set(plan.work.filter(\.samples).map(\.sequence))
        for a in working {
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


    /// The gates' counts over the run: the profile's tokens per expert.
    public var expertLoad: ExpertLoadCounts {
        ExpertLoadCounts(steps: moe.activity.steps, tokens: tokensRun, tokensPerExpert: profile.layers.mapValues(\.tokensPerExpert))
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
            guard let start = offsets[w.attentionRank] else {
                out += Array(repeating: [], count: w.tokens.count)
                continue
            }
            for i in 0..<w.tokens.count { out.append(moe.routing.sortedExperts(token: start + i)) }
            offsets[w.attentionRank] = start + w.tokens.count
        }
        return out
    }

    /// Ends the run on every rank; first times a raw all-to-all of this run's mean
    /// dispatch and combine sizes between the same ranks, as the profile's baseline.
    func shutdown(reason: String) throws {
        let plane = moe.plane, expertCommRanks = moe.expertCommRanks
        let rows = profile.meanRowsPerRank, pairs = profile.meanPairsPerRank
        let dispatchCounts = expertCommRanks.map { Int((rows[$0] ?? 0).rounded()) * plane.width }
        let combineCounts = expertCommRanks.indices.map {
            plane.routers.contains($0) ? 0 : Int((pairs[expertCommRanks[$0]] ?? 0).rounded()) * plane.hidden + ExpertDataPlane.trailer
        }
        let repetitions = rows.isEmpty ? 0 : 30
        let message = Shutdown(reason: reason, baselineDispatchCounts: dispatchCounts, baselineCombineCounts: combineCounts,
                               baselineRepetitions: repetitions)
        _ = try world.broadcastWaitingIdly(bytes: ControlMessage.shutdown(message).encode(senderRank: world.rank), root: world.rank)
        if repetitions > 0 {
            profile.baseline = try RawAllToAll.time(comm: plane.comm, router: plane.router, shutdown: message)
        }
        // The other routers' traffic first: each sends it before its stats.
        var traffic = [profile.traffic(rank: world.rank, attentionRanks: moe.attentionRanks)]
        for r in layout.routerRanks where r != world.rank {
            let (bytes, _) = try world.receive(from: r, tag: Tag.routerTraffic)
            let other = try JSONDecoder().decode(RouterTraffic.self, from: Data(bytes))
            profile.merge(other)
            traffic.append(other)
        }
        profile.routers = traffic
        var activities = [moe.activity.stats(rank: world.rank)]
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
