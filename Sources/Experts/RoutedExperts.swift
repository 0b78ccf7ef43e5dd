import Checkpoint
import Kernels

/// The routed experts of one MoE layer that this process holds (all of them on a single
/// rank, a shard on an expert rank). Only the held experts' tensors are mapped.
public final class RoutedExperts: @unchecked Sendable {
    public let layer: Int
    public let held: [Int]
    private let experts: [Int: FeedForward]
    private let hidden: Int
    private let gathered = Scratch(), results = Scratch()

    public init(checkpoint: Checkpoint, layer: Int, held: [Int]) throws {
        let c = checkpoint.config
        self.layer = layer
        self.held = held
        hidden = c.hiddenSize
        var experts: [Int: FeedForward] = [:]
        for e in held {
            experts[e] = try FeedForward(checkpoint: checkpoint, prefix: "model.layers.\(layer).mlp.experts.\(e)",
                                         hidden: c.hiddenSize, intermediate: c.moeIntermediateSize)
        }
        self.experts = experts
    }

    public var weightBytes: Int { experts.values.reduce(0) { $0 + $1.weightBytes } }

    /// `out[t] += Σ_k weight[t,k] · expert[t,k](x[t])` over the (token, expert) pairs whose
    /// expert is held here; pairs naming other experts are skipped (another rank has them).
    /// Each expert runs once on all of its tokens gathered into one block.
    public func accumulate(_ x: UnsafePointer<Float>, table: RoutingAssignments, into out: UnsafeMutablePointer<Float>) {
        for (expert, pairs) in table.byExpert {
            guard let ffn = experts[expert], !pairs.isEmpty else { continue }
            let n = pairs.count
            let input = gathered.floats(n * hidden), output = results.floats(n * hidden)
            for (i, pair) in pairs.enumerated() {
                (input + i * hidden).update(from: x + pair.token * hidden, count: hidden)
            }
            ffn(input, tokens: n, out: output)
            for (i, pair) in pairs.enumerated() {
                VectorOps.axpy(pair.weight, output + i * hidden, out + pair.token * hidden, count: hidden)
            }
        }
    }
}

/// (token, weight) pairs grouped by expert: the layout an expert FFN consumes.
public struct RoutingAssignments: Sendable {
    public struct Pair: Sendable {
        public let token: Int
        public let weight: Float
        public init(token: Int, weight: Float) { self.token = token; self.weight = weight }
    }

    /// Experts in ascending id order, each with its tokens in token order.
    public private(set) var byExpert: [(expert: Int, pairs: [Pair])]

    public init(byExpert: [(expert: Int, pairs: [Pair])]) { self.byExpert = byExpert }

    /// Groups `experts`/`weights` (`[tokens × topK]`, token-major) by expert.
    public init(experts: [Int32], weights: [Float], topK: Int) {
        var groups: [Int: [Pair]] = [:]
        for i in experts.indices {
            groups[Int(experts[i]), default: []].append(Pair(token: i / topK, weight: weights[i]))
        }
        byExpert = groups.keys.sorted().map { ($0, groups[$0]!) }
    }
}
