import ControlPlane
import Engine
import Experts
import Foundation
import Model
import Transport

/// An attention rank: embeddings, MLA with the latent caches of its own sequences, dense
/// layers, shared experts and the LM head. Each step it runs its share of the plan on the
/// same `ModelRunner` a single process uses; MoE layers send their hidden states to the
/// router serving this rank and compute the shared experts while the routed path is in
/// flight. Plans come from, and results go to, rank 0 (`root`).
final class AttentionRank: RemoteExperts {
    let world: Communicator
    /// The rank that plans: it broadcasts the step plans and collects the results.
    let root: Int
    /// The router that gates this rank's tokens.
    let router: Int
    private(set) var runner: ModelRunner!
    private var activity = RankActivity()
    /// Seconds of the current step spent waiting for routed expert output.
    private var waiting = 0.0

    init(world: Communicator, root: Int, router: Int, model: DeepseekModel) {
        self.world = world
        self.root = root
        self.router = router
        runner = ModelRunner(model: model, remote: self)
    }

    /// Runs plans until rank 0 says shut down.
    func run() throws {
        while true {
            let bytes = try world.broadcastWaitingIdly(bytes: [], root: root)
            switch try ControlMessage.decode(bytes, from: root) {
            case .stepPlan(let plan): try step(plan)
            case .shutdown:
                try world.send(bytes: ControlMessage.stats(activity.stats(rank: world.rank)).encode(senderRank: world.rank), to: root, tag: Tag.stats)
                return
            default: throw ClusterError.unexpectedMessage(from: root, expected: "step plan or shutdown")
            }
        }
    }

    private func step(_ plan: WirePlan) throws {
        let mine = plan.work.filter { $0.attentionRank == world.rank }
        let local = Engine.StepPlan(step: plan.step, work: mine.map { w in
            Engine.StepPlan.Work(sequence: w.sequenceId, tokens: w.tokens, startPosition: w.startPosition, samples: w.sample,
                                 returnsLogits: w.returnLogits,
                                 joining: w.sampling,
                                 capacity: w.capacity, logprobs: w.logprobs)
        }, finished: plan.finishedSequences)
        waiting = 0
        let output = try activity.busy { try runner.execute(local) }
        activity.busySeconds -= waiting
        guard !mine.isEmpty else { return }
        activity.steps += 1
        for w in mine {
            if w.phase == .prefill { activity.prefillTokens += w.tokens.count } else { activity.decodeTokens += w.tokens.count }
        }
        // A work item that does not sample reports token 0; the router knows not to use it.
        let tokens = mine.map { w in
            SequenceToken(sequenceId: w.sequenceId, token: output.tokens[w.sequenceId] ?? 0,
                          logitsRows: w.returnLogits ? w.tokens.count : 0, logprobs: output.logprobs[w.sequenceId])
        }
        try world.send(bytes: ControlMessage.stepResult(StepResult(step: plan.step, tokens: tokens)).encode(senderRank: world.rank),
                       to: root, tag: Tag.stepResult)
        for w in mine where w.returnLogits {
            try output.logits[w.sequenceId]!.withUnsafeBufferPointer { try world.sendFloats($0, to: root, tag: Tag.logits) }
        }
    }

    func send(layer: Int, hidden: UnsafePointer<Float>, tokens: Int) throws {
        try world.sendFloats(UnsafeBufferPointer(start: hidden, count: tokens * runner.model.config.hiddenSize),
                             to: router, tag: Tag.hiddenBase + layer)
    }

    func receive(layer: Int, into out: UnsafeMutablePointer<Float>, tokens: Int) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try world.receiveFloats(into: UnsafeMutableBufferPointer(start: out, count: tokens * runner.model.config.hiddenSize),
                                    from: router, tag: Tag.hiddenBase + layer)
        waiting += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}

/// An expert rank: a shard of the routed experts of every MoE layer, served to every router
/// layer by layer (all routers' rows of a layer in one exchange), step after step.
final class ExpertRank {
    let world: Communicator
    /// The rank that plans (rank 0).
    let router: Int
    let plane: ExpertDataPlane
    /// This rank's shard of every MoE layer, in layer order.
    let experts: [RoutedExperts]
    private var activity = RankActivity()

    init(world: Communicator, router: Int, plane: ExpertDataPlane, experts: [RoutedExperts]) {
        self.world = world
        self.router = router
        self.plane = plane
        self.experts = experts
    }

    func run() throws {
        while true {
            let bytes = try world.broadcastWaitingIdly(bytes: [], root: router)
            switch try ControlMessage.decode(bytes, from: router) {
            case .stepPlan(let plan):
                guard plan.work.contains(where: { !$0.tokens.isEmpty }) else { continue }
                activity.steps += 1
                for layer in experts {
                    let served = try plane.serve(layer)
                    activity.expertTokens += served.rows
                    activity.busySeconds += served.seconds
                }
            case .shutdown(let s):
                if s.baselineRepetitions > 0 { _ = try RawAllToAll.time(comm: plane.comm, router: plane.router, shutdown: s) }
                try world.send(bytes: ControlMessage.stats(activity.stats(rank: world.rank)).encode(senderRank: world.rank), to: router, tag: Tag.stats)
                return
            default: throw ClusterError.unexpectedMessage(from: router, expected: "step plan or shutdown")
            }
        }
    }
}
