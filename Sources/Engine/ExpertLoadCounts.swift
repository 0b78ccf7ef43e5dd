/// Tokens the gates routed to each expert, counted by the executor that runs the gates:
/// `ModelRunner` in one process, the router rank in a cluster. `--record-expert-load`
/// writes them out.
public struct ExpertLoadCounts: Sendable, Equatable {
    /// Steps that ran tokens, and those tokens (prompt chunks and decode tokens).
    public var steps = 0
    public var tokens = 0
    /// MoE layer → tokens routed to each expert id (`n_routed_experts` counts). A token counts
    /// once per chosen expert: each layer sums to `tokens × num_experts_per_tok`.
    public var tokensPerExpert: [Int: [Int]] = [:]

    public init(steps: Int = 0, tokens: Int = 0, tokensPerExpert: [Int: [Int]] = [:]) {
        self.steps = steps
        self.tokens = tokens
        self.tokensPerExpert = tokensPerExpert
    }
}

/// An executor that runs the MoE gates and counts where they send tokens.
public protocol CountsExpertLoad: AnyObject {
    /// Everything counted since the executor was made.
    var expertLoad: ExpertLoadCounts { get }
}
