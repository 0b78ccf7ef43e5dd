import Checkpoint
import Experts
import Kernels
import Routing

/// A MoE layer's feed-forward (`mlp`): the gate picks experts per token, the routed
/// experts run on their tokens, and the shared experts run on every token.
public final class MixtureOfExperts: @unchecked Sendable {
    public let gate: Gate
    public let experts: RoutedExperts
    public let sharedExperts: FeedForward?
    public private(set) var routing: RoutingTable
    private let shared = Scratch()
    let hidden: Int

    public init(checkpoint: Checkpoint, layer: Int) throws {
        let c = checkpoint.config
        hidden = c.hiddenSize
        gate = try Gate(checkpoint: checkpoint, layer: layer)
        experts = try RoutedExperts(checkpoint: checkpoint, layer: layer, held: Array(0..<c.nRoutedExperts))
        sharedExperts = c.nSharedExperts > 0
            ? try FeedForward(checkpoint: checkpoint, prefix: "model.layers.\(layer).mlp.shared_experts",
                              hidden: c.hiddenSize, intermediate: c.moeIntermediateSize * c.nSharedExperts)
            : nil
        routing = RoutingTable(topK: c.numExpertsPerTok)
    }

    public var weightBytes: Int { gate.weightBytes + experts.weightBytes + (sharedExperts?.weightBytes ?? 0) }

    /// `out = Σ routed + shared` for `tokens` rows of the normalised hidden states `x`.
    public func callAsFunction(_ x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>) {
        gate.route(x, tokens: tokens, into: &routing)
        out.update(repeating: 0, count: tokens * hidden)
        let s = shared.floats(tokens * hidden)
        let sharedWork = sharedExperts.map { [FeedForward.Work($0, x: x, tokens: tokens, out: s)] } ?? []
        experts.accumulate(x, table: RoutingAssignments(experts: routing.experts, weights: routing.weights, topK: routing.topK),
                           into: out, alongside: sharedWork)
        if !sharedWork.isEmpty { VectorOps.add(s, to: out, count: tokens * hidden) }
    }
}
