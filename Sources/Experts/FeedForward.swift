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

    /// Columns of the intermediate activations.
    var intermediate: Int { gateProj.rows }

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

extension FeedForward {
    /// One FFN applied to its own block of tokens.
    public struct Work {
        public let ffn: FeedForward
        public let x: UnsafePointer<Float>
        public let tokens: Int
        public let out: UnsafeMutablePointer<Float>

        public init(_ ffn: FeedForward, x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>) {
            self.ffn = ffn
            self.x = x
            self.tokens = tokens
            self.out = out
        }
    }

    /// Runs several FFNs (a token's experts and the shared experts) as two parallel regions
    /// in all — gate and up projections of every FFN, activated where they are computed
    /// (`LinearJob.swiGLU`), then every down projection — instead of three per FFN.
    /// `scratch` holds the intermediate activations.
    public static func runAll(_ work: ArraySlice<Work>, scratch: Scratch) {
        // Each FFN's gate activations, then its up activations, one FFN after another.
        var at = scratch.floats(2 * work.reduce(0) { $0 + $1.tokens * $1.ffn.gateProj.rows })
        var gateUp: [LinearJob] = [], down: [LinearJob] = []
        gateUp.reserveCapacity(work.count)
        down.reserveCapacity(work.count)
        for w in work {
            let size = w.tokens * w.ffn.gateProj.rows
            gateUp.append(.swiGLU(gate: w.ffn.gateProj, up: w.ffn.upProj, w.x, into: at, upOut: at + size, tokens: w.tokens))
            down.append(LinearJob(w.ffn.downProj, at, w.out, tokens: w.tokens))
            at += 2 * size
        }
        Linear.applyMany(gateUp)
        Linear.applyMany(down)
    }
}
