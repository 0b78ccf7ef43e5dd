import Checkpoint
import Foundation
import Kernels

/// Each token's chosen experts and their combine weights, `topK` per token in token order.
public struct RoutingTable: Sendable {
    public let topK: Int
    public private(set) var tokens = 0
    /// `[tokens × topK]` expert ids, best first within each token.
    public var experts: [Int32] = []
    /// `[tokens × topK]` weights the experts' outputs are summed with.
    public var weights: [Float] = []

    public init(topK: Int) { self.topK = topK }

    /// Sizes the table for `tokens`, keeping its storage from step to step.
    public mutating func reset(tokens: Int) {
        self.tokens = tokens
        experts.removeAll(keepingCapacity: true)
        experts.append(contentsOf: repeatElement(0, count: tokens * topK))
        weights.removeAll(keepingCapacity: true)
        weights.append(contentsOf: repeatElement(0, count: tokens * topK))
    }

    /// Token `t`'s experts in ascending order (the form the reference dumps).
    public func sortedExperts(token t: Int) -> [Int] {
        experts[t * topK ..< (t + 1) * topK].map(Int.init).sorted()
    }
}

/// The MoE gate of one layer (`mlp.gate`): scores every routed expert for each token and
/// picks `num_experts_per_tok` of them, as DeepSeek-V2/V3 define it.
///
/// - scoring: sigmoid (V3) or softmax (V2) of the router logits;
/// - choice: `noaux_tc` adds `e_score_correction_bias` to the scores for choosing only, and
///   ranks groups by the sum of their two best; `group_limited_greedy` ranks groups by their
///   best; `greedy` ignores groups;
/// - weights: the unbiased scores of the chosen experts, normalised when `norm_topk_prob`,
///   times `routed_scaling_factor`.
public final class Gate: @unchecked Sendable {
    public let layer: Int
    let weight: WeightMatrix
    let correctionBias: [Float]?
    let experts: Int, topK: Int, groups: Int, topKGroups: Int
    let scoring: ModelConfig.ScoringFunc
    let method: ModelConfig.TopkMethod
    let normalize: Bool
    /// DeepSeek-V2's code normalises instead of scaling; V3's normalises, then scales.
    let scaleAfterNormalizing: Bool
    let scalingFactor: Float
    private let logits = Scratch()
    /// Per-token working space, allocated once: plain buffers, not array properties, whose
    /// every element access in a class pays exclusivity and uniqueness checks (a decode step's
    /// selection took 5 µs a layer with them).
    private let scores: UnsafeMutableBufferPointer<Float>, choice: UnsafeMutableBufferPointer<Float>
    private let groupScores: UnsafeMutableBufferPointer<Float>
    private let chosen: UnsafeMutableBufferPointer<Int>, keptGroups: UnsafeMutableBufferPointer<Int>

    public init(checkpoint: Checkpoint, layer: Int) throws {
        let c = checkpoint.config
        let p = "model.layers.\(layer).mlp.gate."
        self.layer = layer
        experts = c.nRoutedExperts
        topK = c.numExpertsPerTok
        groups = max(c.nGroup, 1)
        topKGroups = max(c.topkGroup, 1)
        scoring = c.scoringFunc
        method = c.topkMethod
        scalingFactor = Float(c.routedScalingFactor)
        // DeepSeek-V2's code skips normalising a single expert; V3's always normalises.
        normalize = c.normTopkProb && (topK > 1 || c.architecture == .deepseekV3)
        scaleAfterNormalizing = c.architecture == .deepseekV3
        weight = try checkpoint.matrix(p + "weight", rows: experts, cols: c.hiddenSize)
        correctionBias = method == .noauxTC ? try checkpoint.vector(p + "e_score_correction_bias", count: experts) : nil
        scores = .allocate(capacity: experts)
        choice = .allocate(capacity: experts)
        groupScores = .allocate(capacity: groups)
        chosen = .allocate(capacity: topK)
        keptGroups = .allocate(capacity: topKGroups)
    }

    deinit {
        scores.deallocate()
        choice.deallocate()
        groupScores.deallocate()
        chosen.deallocate()
        keptGroups.deallocate()
    }

    public var weightBytes: Int { weight.byteCount + (correctionBias?.count ?? 0) * 4 }

    /// Routes `tokens` rows of `x` (`[tokens × hidden]`, post-attention-normalised).
    public func route(_ x: UnsafePointer<Float>, tokens: Int, into table: inout RoutingTable) {
        let l = logits.floats(tokens * experts)
        Linear.apply(weight, x, l, tokens: tokens, exact: true)
        table.reset(tokens: tokens)
        for t in 0..<tokens {
            let row = l + t * experts
            switch scoring {
            case .sigmoid:
                for e in 0..<experts { scores[e] = 1 / (1 + expf(-row[e])) }
            case .softmax:
                scores.baseAddress!.update(from: row, count: experts)
                VectorOps.softmax(scores.baseAddress!, count: experts)
            }
            for e in 0..<experts { choice[e] = scores[e] + (correctionBias?[e] ?? 0) }
            if method != .greedy && groups > 1 { maskGroups() }
            Self.topIndices(UnsafeBufferPointer(choice), into: chosen)
            var sum: Float = 0
            for k in 0..<topK { sum += scores[chosen[k]] }
            let scale = !normalize || scaleAfterNormalizing
            for k in 0..<topK {
                var w = scores[chosen[k]]
                if normalize { w /= sum + 1e-20 }
                if scale { w *= scalingFactor }
                table.experts[t * topK + k] = Int32(chosen[k])
                table.weights[t * topK + k] = w
            }
        }
    }

    /// Keeps the experts of the `topk_group` best groups; the rest can no longer be chosen.
    private func maskGroups() {
        let perGroup = experts / groups
        for g in 0..<groups {
            let members = choice[g * perGroup ..< (g + 1) * perGroup]
            if method == .noauxTC {
                var best = -Float.infinity, second = -Float.infinity
                for v in members {
                    if v > best { second = best; best = v } else if v > second { second = v }
                }
                groupScores[g] = best + (perGroup > 1 ? second : 0)
            } else {
                groupScores[g] = members.max()!
            }
        }
        Self.topIndices(UnsafeBufferPointer(groupScores), into: keptGroups)
        let masked: Float = method == .noauxTC ? -.infinity : 0
        for g in 0..<groups where !keptGroups.contains(g) {
            for e in g * perGroup ..< (g + 1) * perGroup { choice[e] = masked }
        }
    }

    /// Indices of the `out.count` largest values into `out`, best first (lowest index wins a tie).
    static func topIndices(_ values: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Int>) {
        for k in out.indices {
            var best = -1
            for i in values.indices where !out[..<k].contains(i) {
                if best < 0 || values[i] > values[best] { best = i }
            }
            out[k] = best
        }
    }
}
