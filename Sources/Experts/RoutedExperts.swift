import Checkpoint
import Kernels

/// The routed experts of one MoE layer that this process holds (all of them on a single
/// rank, a shard on an expert rank). Only the held experts' tensors are mapped.
public final class RoutedExperts: @unchecked Sendable {
    public let layer: Int
    public let held: [Int]
    private let experts: [Int: FeedForward]
    private let hidden: Int
    private let gathered = Scratch(), results = Scratch(), intermediate = Scratch()

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
    /// Each expert runs once on all of its tokens gathered into one block. `alongside` are
    /// other FFNs (the shared experts) run in the same parallel regions when that pays.
    /// Row `t` of `x` starts at `t · ldx` (default `hidden`: dispatched rows carry routing after the activations).
    public func accumulate(_ x: UnsafePointer<Float>, ldx: Int? = nil, table: RoutingAssignments, into out: UnsafeMutablePointer<Float>,
                           alongside: [FeedForward.Work] = []) {
        let ldx = ldx ?? hidden
        let active = table.byExpert.compactMap { e in experts[e.expert].map { (ffn: $0, pairs: e.pairs) } }
        let rows = active.reduce(0) { $0 + $1.pairs.count }
        let input = gathered.floats(rows * hidden), output = results.floats(rows * hidden)
        var work: [FeedForward.Work] = []
        var row = 0
        for (ffn, pairs) in active {
            for (i, pair) in pairs.enumerated() {
                (input + (row + i) * hidden).update(from: x + pair.token * ldx, count: hidden)
            }
            work.append(FeedForward.Work(ffn, x: input + row * hidden, tokens: pairs.count, out: output + row * hidden))
            row += pairs.count
        }
        // Few tokens per expert (decode): all FFNs together, so their single-token products
        // share two parallel regions (`Linear.applyMany`; larger ones go to oneDNN one by one).
        // Many (prefill): expert by expert, keeping the intermediate activations one expert's size.
        if active.allSatisfy({ $0.pairs.count <= Self.fusedTokenLimit }) {
            FeedForward.runAll(work + alongside, scratch: intermediate)
        } else {
            for w in work + alongside { w.ffn(w.x, tokens: w.tokens, out: w.out) }
        }
        row = 0
        for (_, pairs) in active {
            for (i, pair) in pairs.enumerated() {
                VectorOps.axpy(pair.weight, output + (row + i) * hidden, out + pair.token * hidden, count: hidden)
            }
            row += pairs.count
        }
    }

    static let fusedTokenLimit = 8
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
