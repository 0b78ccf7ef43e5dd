import Checkpoint
import Kernels

/// A SwiGLU feed-forward block (`gate_proj`, `up_proj`, `down_proj`): the dense MLP of the
/// first layers, each routed expert, and the shared experts.
public final class FeedForward: @unchecked Sendable {
    let gateProj: WeightMatrix
    let upProj: WeightMatrix
    let downProj: WeightMatrix
    private let gate = Scratch(), up = Scratch()

    /// Loads `<prefix>.gate_proj.weight` etc., e.g. prefix `model.layers.3.mlp.experts.17`.
    public init(checkpoint: Checkpoint, prefix: String, hidden: Int, intermediate: Int) throws {
        gateProj = try checkpoint.matrix(prefix + ".gate_proj.weight", rows: intermediate, cols: hidden)
        upProj = try checkpoint.matrix(prefix + ".up_proj.weight", rows: intermediate, cols: hidden)
        downProj = try checkpoint.matrix(prefix + ".down_proj.weight", rows: hidden, cols: intermediate)
    }

    public var weightBytes: Int { gateProj.byteCount + upProj.byteCount + downProj.byteCount }

    /// `out = down(silu(gate(x)) ⊙ up(x))` for `tokens` rows.
    public func callAsFunction(_ x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>) {
        let n = tokens * gateProj.rows
        let g = gate.floats(n), u = up.floats(n)
        Linear.apply(gateProj, x, g, tokens: tokens)
        Linear.apply(upProj, x, u, tokens: tokens)
        VectorOps.siluMul(g, u, count: n)
        Linear.apply(downProj, g, out, tokens: tokens)
    }
}
