import Attention
import Model
import Sampling

public enum ExecutionError: Error, CustomStringConvertible {
    case unknownSequence(UInt64, step: UInt64)
    case positionMismatch(sequence: UInt64, expected: Int, planned: Int)
    case tokenOutOfRange(token: Int, vocabSize: Int)
    case contextExceeded(sequence: UInt64, positions: Int, contextLength: Int)
    case emptyWork(sequence: UInt64, step: UInt64)

    public var description: String {
        switch self {
        case .unknownSequence(let s, let step): "step \(step) continues sequence \(s), which never joined"
        case .positionMismatch(let s, let e, let p): "sequence \(s) is at position \(e) but the plan starts it at \(p)"
        case .tokenOutOfRange(let t, let v): "token id \(t) is outside the vocabulary (0..<\(v))"
        case .contextExceeded(let s, let p, let c): "sequence \(s) would reach \(p) positions; the model's context is \(c) (max_position_embeddings)"
        case .emptyWork(let s, let step): "step \(step) gives sequence \(s) no tokens"
        }
    }
}

/// Runs the plan's work on a model in this process: holds each sequence's latent cache
/// and sampler, batches all work into one forward pass and samples the next tokens.
/// A single process runs whole plans; a cluster's attention rank runs its share, with
/// `remote` carrying the routed experts.
public final class ModelRunner: StepExecutor, CountsExpertLoad {
    public let model: DeepseekModel
    public private(set) weak var remote: RemoteExperts?
    private var sequences: [UInt64: (cache: LatentCache, sampler: Sampler)] = [:]
    private var steps = 0, tokensRun = 0

    public init(model: DeepseekModel, remote: RemoteExperts? = nil) {
        self.model = model
        self.remote = remote
    }

    public var vocabSize: Int { model.config.vocabSize }
    public var contextLength: Int { model.config.maxPositionEmbeddings }

    public func execute(_ plan: StepPlan) throws -> StepOutput {
        for s in plan.finished { sequences[s] = nil }
        var tokens: [Int] = []
        var slices: [AttentionBatch.Slice] = []
        var rows: [Int] = []
        for w in plan.work {
            guard !w.tokens.isEmpty else { throw ExecutionError.emptyWork(sequence: w.sequence, step: plan.step) }
            guard w.startPosition + w.tokens.count <= contextLength else {
                throw ExecutionError.contextExceeded(sequence: w.sequence, positions: w.startPosition + w.tokens.count, contextLength: contextLength)
            }
            if let sampling = w.joining {
                // The cache grows on demand; the plan's capacity only sizes its first allocation.
                let capacity = min(max(w.capacity, w.tokens.count), contextLength)
                sequences[w.sequence] = (model.makeCache(capacity: capacity), try Sampler(sampling))
            }
            guard let seq = sequences[w.sequence] else { throw ExecutionError.unknownSequence(w.sequence, step: plan.step) }
            guard seq.cache.length == w.startPosition else {
                throw ExecutionError.positionMismatch(sequence: w.sequence, expected: seq.cache.length, planned: w.startPosition)
            }
            if let bad = w.tokens.first(where: { $0 < 0 || $0 >= vocabSize }) {
                throw ExecutionError.tokenOutOfRange(token: bad, vocabSize: vocabSize)
            }
            slices.append(.init(cache: seq.cache, first: tokens.count, count: w.tokens.count))
            if w.returnsLogits { rows += tokens.count ..< tokens.count + w.tokens.count } else if w.samples { rows.append(tokens.count + w.tokens.count - 1) }
            tokens += w.tokens
        }
        var output = StepOutput()
        guard !tokens.isEmpty else { return output }
        let logits = try model.forward(tokens: tokens, batch: AttentionBatch(slices: slices), logitRows: rows, remote: remote)
        steps += 1
        tokensRun += tokens.count
        var row = 0
        let vocab = vocabSize
        try logits.withUnsafeBufferPointer { all in
            for w in plan.work {
                let count = w.returnsLogits ? w.tokens.count : (w.samples ? 1 : 0)
                guard count > 0 else { continue }
                let block = UnsafeBufferPointer(rebasing: all[row * vocab ..< (row + count) * vocab])
                if w.returnsLogits { output.logits[w.sequence] = Array(block) }
                if w.samples {
                    guard var sequence = sequences[w.sequence] else { throw ExecutionError.unknownSequence(w.sequence, step: plan.step) }
                    let last = UnsafeBufferPointer(rebasing: block[(count - 1) * vocab ..< count * vocab])
                    let token = sequence.sampler.sample(logits: last)
                    output.tokens[w.sequence] = token
                    if let top = w.logprobs { output.logprobs[w.sequence] = TokenLogprobs(logits: last, chosen: token, top: top) }
                    sequences[w.sequence] = sequence
                }
                row += count
            }
        }
        return output
    }
}

extension ModelRunner {
    /// The gates' counts when they run here (one process); a cluster's attention rank has
    /// no gate and counts nothing per layer.
    public var expertLoad: ExpertLoadCounts {
        var counts = ExpertLoadCounts(steps: steps, tokens: tokensRun)
        for layer in model.layers {
            if case .moe(let moe) = layer.mlp, case .local = moe.routed { counts.tokensPerExpert[layer.index] = moe.tokensPerExpert }
        }
        return counts
    }
}
