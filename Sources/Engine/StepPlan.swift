import Sampling

/// One forward pass's work: which sequences advance, by which tokens, and which leave.
/// A sequence joins with its prompt (prefill) and then advances one token per step
/// (decode); any step may mix joins, decodes and leaves (continuous batching).
public struct StepPlan: Sendable, Equatable {
    public struct Work: Sendable, Equatable {
        public var sequence: UInt64
        public var tokens: [Int]
        /// Position of `tokens[0]` in the sequence.
        public var startPosition: Int
        /// Sample a next token after this work (false for a prompt chunk that is not the last).
        public var samples: Bool
        /// Also return the logits of every token of this work (the `logits` command).
        public var returnsLogits: Bool
        /// Sampling of a joining sequence; nil once it has joined.
        public var joining: SamplingParameters?
        /// Positions the sequence may reach, for sizing its cache when it joins.
        public var capacity: Int
        /// The cache pool (a cluster's attention rank, by index) that holds the sequence.
        public var pool: Int
        /// Report the sampled token's log-probability and this many top alternatives; nil: none.
        public var logprobs: Int?

        public init(sequence: UInt64, tokens: [Int], startPosition: Int, samples: Bool = true, returnsLogits: Bool = false,
                    joining: SamplingParameters? = nil, capacity: Int = 0, pool: Int = 0, logprobs: Int? = nil) {
            self.sequence = sequence
            self.tokens = tokens
            self.startPosition = startPosition
            self.samples = samples
            self.returnsLogits = returnsLogits
            self.joining = joining
            self.capacity = capacity
            self.pool = pool
            self.logprobs = logprobs
        }

        /// A running sequence's one new token, as opposed to a chunk of its prompt.
        public var isDecode: Bool { joining == nil && tokens.count == 1 && samples && startPosition > 0 }
    }

    public var step: UInt64
    public var work: [Work]
    /// Sequences that ended before this step: their caches are freed.
    public var finished: [UInt64]

    public init(step: UInt64, work: [Work], finished: [UInt64] = []) {
        self.step = step
        self.work = work
        self.finished = finished
    }

    public var tokenCount: Int { work.reduce(0) { $0 + $1.tokens.count } }
}

/// What a step produced: a sampled token per sampling sequence, logits where asked.
public struct StepOutput: Sendable {
    public var tokens: [UInt64: Int] = [:]
    /// `[tokens × vocab]` per sequence that asked for logits.
    public var logits: [UInt64: [Float]] = [:]
    /// The sampled token's log-probabilities, per sequence that asked for them.
    public var logprobs: [UInt64: TokenLogprobs] = [:]

    public init() {}
}

/// Executes step plans: in this process (`ModelRunner`) or across a cluster's ranks.
public protocol StepExecutor: AnyObject {
    var vocabSize: Int { get }
    /// Positions a sequence may reach (`max_position_embeddings`).
    var contextLength: Int { get }
    /// Separate holders of latent caches (a cluster's attention ranks); plans place each
    /// sequence in one of them.
    var cachePools: Int { get }
    func execute(_ plan: StepPlan) throws -> StepOutput
}

extension StepExecutor {
    public var cachePools: Int { 1 }
}
