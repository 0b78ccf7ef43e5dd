import Checkpoint
import Experts
import Kernels
import Routing

/// Where a MoE layer's routed experts run when they are not in this process: the
/// attention rank of a cluster hands its tokens to the router and gets their combined
/// expert output back.
public protocol RemoteExperts: AnyObject {
    /// Sends `tokens` rows of normalised hidden states of MoE layer `layer` away.
    func send(layer: Int, hidden: UnsafePointer<Float>, tokens: Int) throws
    /// Receives `Σ_k weight · expert_k(x)` for the rows sent, `[tokens × hidden]`, summed as
    /// `RoutedExperts.sum` sums.
    func receive(layer: Int, into out: UnsafeMutablePointer<Float>, tokens: Int) throws
}

/// A MoE layer's feed-forward (`mlp`): the gate picks experts per token, the routed
/// experts run on their tokens, and the shared experts run on every token.
public final class MixtureOfExperts: @unchecked Sendable {
    /// Gate and routed experts in this process, or a remote path to them.
    public enum Routed {
        case local(Gate, RoutedExperts)
        case remote
    }

    public let layer: Int
    public let routed: Routed
    public let sharedExperts: FeedForward?
    public private(set) var routing: RoutingTable
    /// Tokens the local gate routed to each expert id since the model was loaded (one per
    /// (token, chosen expert)); empty when the routed experts are remote.
    public private(set) var tokensPerExpert: [Int]
    private let shared = Scratch(), slots = Scratch()
    let hidden: Int

    public init(checkpoint: Checkpoint, layer: Int, localRouted: Bool) throws {
        let c = checkpoint.config
        self.layer = layer
        hidden = c.hiddenSize
        routed = localRouted
            ? .local(try Gate(checkpoint: checkpoint, layer: layer),
                     try RoutedExperts(checkpoint: checkpoint, layer: layer, held: Array(0..<c.nRoutedExperts)))
            : .remote
        sharedExperts = c.nSharedExperts > 0
            ? try FeedForward(checkpoint: checkpoint, prefix: "model.layers.\(layer).mlp.shared_experts",
                              hidden: c.hiddenSize, intermediate: c.moeIntermediateSize * c.nSharedExperts)
            : nil
        routing = RoutingTable(topK: c.numExpertsPerTok)
        tokensPerExpert = localRouted ? Array(repeating: 0, count: c.nRoutedExperts) : []
    }

    public var weightBytes: Int {
        let routedBytes = switch routed {
        case .local(let gate, let experts): gate.weightBytes + experts.weightBytes
        case .remote: 0
        }
        return routedBytes + (sharedExperts?.weightBytes ?? 0)
    }

    /// `out = Σ routed + shared` for `tokens` rows of the normalised hidden states `x`.
    /// With remote experts the shared experts run while the routed path is in flight.
    public func callAsFunction(_ x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>,
                               remote: RemoteExperts?) throws {
        let s = shared.floats(tokens * hidden)
        switch routed {
        case .local(let gate, let experts):
            gate.route(x, tokens: tokens, into: &routing)
            let topK = routing.topK, outputs = slots.floats(tokens * topK * hidden)
            for e in routing.experts { tokensPerExpert[Int(e)] += 1 }
            let sharedWork = sharedExperts.map { [FeedForward.Work($0, x: x, tokens: tokens, out: s)] } ?? []
            experts.run(x, table: RoutingAssignments(experts: routing.experts, topK: topK),
                        into: outputs, alongside: sharedWork)
            routing.weights.withUnsafeBufferPointer {
                RoutedExperts.sum(outputs, weights: $0.baseAddress!, topK: topK, tokens: tokens, hidden: hidden, into: out)
            }
            if !sharedWork.isEmpty { VectorOps.add(s, to: out, rows: tokens, width: hidden) }
        case .remote:
            guard let remote else { preconditionFailure("MoE layer \(layer) has remote experts but no remote path") }
            try remote.send(layer: layer, hidden: x, tokens: tokens)
            sharedExperts?(x, tokens: tokens, out: s)
            try remote.receive(layer: layer, into: out, tokens: tokens)
            if sharedExperts != nil { VectorOps.add(s, to: out, rows: tokens, width: hidden) }
        }
    }
}
