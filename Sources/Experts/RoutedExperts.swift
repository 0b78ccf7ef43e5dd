import Checkpoint
import Kernels

/// The routed experts of one MoE layer that this process holds (all of them on a single
/// rank, a shard on an expert rank). Only the held experts' tensors are mapped.
public final class RoutedExperts: @unchecked Sendable {
    public let layer: Int
    public let held: [Int]
    /// Indexed by expert id; nil for the experts other ranks hold.
    private let experts: [FeedForward?]
    private let hidden: Int
    private let gathered = Scratch(), results = Scratch(), intermediate = Scratch()
    /// The pairs of every held expert with more than one, in turn: row i of `gathered` is
    /// pair i. With `work`, kept between calls so that a decode step allocates neither.
    private var pairs: [RoutingAssignments.Pair] = []
    /// The FFNs of a call: its held experts, then the FFNs run alongside them.
    private var work: [FeedForward.Work] = []

    public init(checkpoint: Checkpoint, layer: Int, held: [Int]) throws {
        let c = checkpoint.config
        self.layer = layer
        self.held = held
        hidden = c.hiddenSize
        var experts = [FeedForward?](repeating: nil, count: c.nRoutedExperts)
        for e in held {
            experts[e] = try FeedForward(checkpoint: checkpoint, prefix: "model.layers.\(layer).mlp.experts.\(e)",
                                         hidden: c.hiddenSize, intermediate: c.moeIntermediateSize)
        }
        self.experts = experts
    }

    public var weightBytes: Int { experts.reduce(0) { $0 + ($1?.weightBytes ?? 0) } }

    /// Each (token, slot) pair's expert output `expert(x[token])`, unweighted, into row
    /// `pair.row` of `out` (`hidden` apart); pairs naming experts not held here are skipped
    /// (another rank has them). Each expert runs once on all of its tokens gathered into
    /// one block. `alongside` are other FFNs (the shared experts) run in the same parallel
    /// regions when that pays. Row `t` of `x` starts at `t · ldx` (default `hidden`:
    /// dispatched rows carry routing after the activations).
    public func run(_ x: UnsafePointer<Float>, ldx: Int? = nil, table: RoutingAssignments, into out: UnsafeMutablePointer<Float>,
                    alongside: [FeedForward.Work] = []) {
        let ldx = ldx ?? hidden
        // An expert with a single pair reads its token's row where it is and writes its output
        // row in place: a decode step's experts copy nothing (the gather and scatter, with their
        // cache misses, were a fifth of the serial time between a layer's parallel regions).
        pairs.removeAll(keepingCapacity: true)
        for e in table.byExpert where e.pairs.count > 1 && held(e.expert) != nil { pairs.append(contentsOf: e.pairs) }
        let rows = pairs.count, hidden = hidden
        let input = gathered.floats(rows * hidden), output = results.floats(rows * hidden)
        pairs.withUnsafeBufferPointer { pairs in
            ComputePool.shared.rows(rows, floats: hidden) { range in
                for i in range { (input + i * hidden).update(from: x + pairs[i].token * ldx, count: hidden) }
            }
        }
        work.removeAll(keepingCapacity: true)
        var row = 0
        for e in table.byExpert {
            guard let ffn = held(e.expert) else { continue }
            if e.pairs.count == 1 {
                let only = e.pairs[0]
                work.append(FeedForward.Work(ffn, x: x + only.token * ldx, tokens: 1, out: out + only.row * hidden))
                continue
            }
            work.append(FeedForward.Work(ffn, x: input + row * hidden, tokens: e.pairs.count, out: output + row * hidden))
            row += e.pairs.count
        }
        work.append(contentsOf: alongside)
        // All FFNs together, so that their products share two parallel regions
        // (`Linear.applyMany`) instead of taking three each; in groups whose intermediate
        // activations stay under `intermediateBudget` floats, for long prompt chunks.
        var start = 0, size = 0
        for (i, w) in work.enumerated() {
            let floats = 2 * w.tokens * w.ffn.intermediate
            if i > start && size + floats > Self.intermediateBudget {
                FeedForward.runAll(work[start ..< i], scratch: intermediate)
                (start, size) = (i, 0)
            }
            size += floats
        }
        FeedForward.runAll(work[start...], scratch: intermediate)
        pairs.withUnsafeBufferPointer { pairs in
            ComputePool.shared.rows(rows, floats: hidden) { range in
                for i in range { (out + pairs[i].row * hidden).update(from: output + i * hidden, count: hidden) }
            }
        }
    }

    /// Expert `id`'s FFN when this process holds it.
    private func held(_ id: Int) -> FeedForward? { experts.indices.contains(id) ? experts[id] : nil }

    /// `out[t] = Σ_k weight[t, k] · slot[t, k]` over `tokens` rows, the slots
    /// (`[tokens × topK × hidden]`) in the gate's order: the one order a token's expert
    /// outputs are summed in, whichever rank ran which expert — so a cluster's sums are
    /// the same bits as one process's.
    public static func sum(_ slots: UnsafePointer<Float>, weights: UnsafePointer<Float>, topK: Int, tokens: Int, hidden: Int,
                           into out: UnsafeMutablePointer<Float>) {
        ComputePool.shared.rows(tokens, floats: topK * hidden) { range in
            for t in range {
                (out + t * hidden).update(repeating: 0, count: hidden)
                for k in 0..<topK {
                    VectorOps.axpy(weights[t * topK + k], slots + (t * topK + k) * hidden, out + t * hidden, count: hidden)
                }
            }
        }
    }

    /// 64 MB of gate and up activations: a 128-token chunk of bench-mid takes 3 MB, one
    /// of 2048 tokens on DeepSeek-V3 (8 experts of 2048) 256 MB, run in four groups.
    static let intermediateBudget = 16 << 20
}

/// (token, output row) pairs grouped by expert: the layout an expert FFN consumes.
public struct RoutingAssignments: Sendable {
    public struct Pair: Sendable {
        /// The input row.
        public let token: Int
        /// Where the expert's output goes.
        public let row: Int
        public init(token: Int, row: Int) { self.token = token; self.row = row }
    }

    /// Experts in ascending id order, each with its tokens in token order.
    public private(set) var byExpert: [(expert: Int, pairs: [Pair])]

    public init(byExpert: [(expert: Int, pairs: [Pair])]) { self.byExpert = byExpert }

    /// Groups `experts` (`[tokens × topK]`, token-major) by expert; slot `i`'s output goes to row `i`.
    public init(experts: [Int32], topK: Int) {
        let order = experts.indices.sorted { experts[$0] != experts[$1] ? experts[$0] < experts[$1] : $0 < $1 }
        byExpert = []
        for i in order {
            let expert = Int(experts[i]), pair = Pair(token: i / topK, row: i)
            if byExpert.last?.expert == expert { byExpert[byExpert.count - 1].pairs.append(pair) } else { byExpert.append((expert, [pair])) }
        }
    }
}
