import Checkpoint
import Foundation

/// Rotary position embedding over the `qk_rope_head_dim` slice of queries and keys,
/// with DeepSeek's YaRN context extension when `rope_scaling` asks for it.
public struct RotaryEmbedding: Sendable {
    public let dim: Int
    /// One inverse frequency per rotated pair, in f32 as the reference computes them.
    public let inverseFrequencies: [Float]
    /// YaRN's magnitude correction, applied to cos and sin (1 without YaRN).
    public let attentionFactor: Float
    /// DeepSeek rotates adjacent pairs `(x0, x1), (x2, x3)…`; otherwise halves `(x_i, x_{i+d/2})`.
    public let interleaved: Bool

    public init(config: ModelConfig) {
        let dim = config.qkRopeHeadDim
        let base = Float(config.rope.theta)
        self.dim = dim
        interleaved = config.architecture == .deepseekV2 || config.ropeInterleave
        let positionFrequencies = (0..<dim / 2).map { powf(base, Float(2 * $0) / Float(dim)) }
        guard let yarn = config.rope.yarn else {
            inverseFrequencies = positionFrequencies.map { 1 / $0 }
            attentionFactor = 1
            return
        }
        let factor = Float(yarn.factor)
        let (low, high) = Self.correctionRange(yarn: yarn, dim: dim, base: config.rope.theta)
        let span = high == low ? 0.001 : high - low
        inverseFrequencies = positionFrequencies.enumerated().map { i, p in
            let ramp = min(max((Float(i) - low) / span, 0), 1)
            let extrapolation = 1 - ramp
            let interpolated: Float = 1 / (factor * p)
            return interpolated * (1 - extrapolation) + (1 / p) * extrapolation
        }
        attentionFactor = Float(yarn.cosSinScale)
    }

    /// The softmax scale of MLA: `1/√qk_head_dim`, times YaRN's `mscale(mscale_all_dim)²`.
    public static func softmaxScale(config: ModelConfig) -> Float {
        Float(1 / Double(config.qkHeadDim).squareRoot() * (config.rope.yarn?.softmaxScaleMultiplier ?? 1))
    }

    /// The band of rotary dims between full interpolation and full extrapolation.
    private static func correctionRange(yarn: ModelConfig.Yarn, dim: Int, base: Double) -> (Float, Float) {
        func correctionDim(_ rotations: Double) -> Double {
            Double(dim) * log(Double(yarn.originalMaxPositionEmbeddings) / (rotations * 2 * .pi)) / (2 * log(base))
        }
        var low = correctionDim(yarn.betaFast), high = correctionDim(yarn.betaSlow)
        if yarn.truncate { low = low.rounded(.down); high = high.rounded(.up) }
        return (Float(max(low, 0)), Float(min(high, Double(dim - 1))))
    }

    /// Rotates `count` vectors of `dim` values, `stride` apart, for one position.
    public func apply(_ x: UnsafeMutablePointer<Float>, position: Int, count: Int, stride: Int) {
        let half = dim / 2
        withUnsafeTemporaryAllocation(of: Float.self, capacity: dim) { table in
            for i in 0..<half {
                let angle = Float(position) * inverseFrequencies[i]
                table[i] = cosf(angle) * attentionFactor
                table[half + i] = sinf(angle) * attentionFactor
            }
            for v in 0..<count {
                let p = x + v * stride
                for i in 0..<half {
                    let (a, b) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                    let x0 = p[a], x1 = p[b], c = table[i], s = table[half + i]
                    p[a] = x0 * c - x1 * s
                    p[b] = x1 * c + x0 * s
                }
            }
        }
    }
}
