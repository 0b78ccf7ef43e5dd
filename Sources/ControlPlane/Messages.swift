public import Sampling

/// What a rank does in the cluster.
public enum RankRole: String, Sendable, Hashable, CaseIterable, Codable {
    /// Takes requests, plans steps, runs the gates and the expert all-to-all.
    case router
    /// Embeddings, attention, the latent caches, dense layers.
    case attention
    /// Routed experts.
    case expert
}

/// Sent once by every rank at start-up (gathered on rank 0 for the start-up table).
public struct Hello: Sendable, Hashable {
    public var rank: Int
    public var host: String
    public var role: RankRole
    /// Routed expert indices this rank holds; the same list for every MoE layer.
    public var experts: [Int]
    public var residentWeightBytes: Int
    public var pid: Int
    /// Bytes of the safetensors files in the rank's model directory (its node's shard, or the whole model).
    public var diskBytes: Int
    /// That directory: ranks of one node sharing it count its bytes once.
    public var modelDirectory: String

    public init(rank: Int, host: String, role: RankRole, experts: [Int] = [], residentWeightBytes: Int = 0, pid: Int,
                diskBytes: Int = 0, modelDirectory: String = "") {
        self.rank = rank
        self.host = host
        self.role = role
        self.experts = experts
        self.residentWeightBytes = residentWeightBytes
        self.pid = pid
        self.diskBytes = diskBytes
        self.modelDirectory = modelDirectory
    }
}

/// One rank's place in the cluster.
public struct RankAssignment: Sendable, Hashable {
    public var rank: Int
    public var role: RankRole
    public var experts: [Int]
    public var host: String

    public init(rank: Int, role: RankRole, experts: [Int] = [], host: String = "") {
        self.rank = rank
        self.role = role
        self.experts = experts
        self.host = host
    }
}

/// Broadcast by the router once every `Hello` is in; every rank must agree on it.
public struct Topology: Sendable, Hashable {
    public var worldSize: Int
    /// Exactly one assignment per rank `0..<worldSize`, in any order.
    public var ranks: [RankAssignment]
    public var modelName: String
    /// Hash of the model's config and weight index, so ranks know they loaded the same model.
    public var modelHash: String
    public var numHiddenLayers: Int
    public var numRoutedExperts: Int

    public init(worldSize: Int, ranks: [RankAssignment], modelName: String, modelHash: String, numHiddenLayers: Int = 0, numRoutedExperts: Int = 0) {
        self.worldSize = worldSize
        self.ranks = ranks
        self.modelName = modelName
        self.modelHash = modelHash
        self.numHiddenLayers = numHiddenLayers
        self.numRoutedExperts = numRoutedExperts
    }

    /// The assignment of `rank`, if the topology has one.
    public func assignment(of rank: Int) -> RankAssignment? { ranks.first { $0.rank == rank } }
}

/// How a request's tokens are sampled: the engine's own parameters travel as they are.
public typealias SamplingOptions = SamplingParameters

/// A client's request, as the front end hands it to the router.
public struct SubmitRequest: Sendable, Hashable {
    public var requestId: UInt64
    public var promptTokenIds: [Int]
    public var sampling: SamplingOptions
    public var maxTokens: Int
    public var stopTokenIds: [Int]
    public var stopStrings: [String]
    public var ignoreEOS: Bool

    public init(requestId: UInt64, promptTokenIds: [Int], sampling: SamplingOptions = .greedy, maxTokens: Int,
                stopTokenIds: [Int] = [], stopStrings: [String] = [], ignoreEOS: Bool = false) {
        self.requestId = requestId
        self.promptTokenIds = promptTokenIds
        self.sampling = sampling
        self.maxTokens = maxTokens
        self.stopTokenIds = stopTokenIds
        self.stopStrings = stopStrings
        self.ignoreEOS = ignoreEOS
    }
}

/// One sequence's share of a step.
public struct SequenceWork: Sendable, Hashable {
    public enum Phase: String, Sendable, Hashable, CaseIterable {
        /// A chunk of the prompt.
        case prefill
        /// The one token sampled in the previous step.
        case decode
    }

    public var sequenceId: UInt64
    /// The rank that holds this sequence's cache.
    public var attentionRank: Int
    public var phase: Phase
    /// The prompt chunk, or the one decode token.
    public var tokens: [Int]
    /// Position of `tokens[0]` in the sequence.
    public var startPosition: Int
    /// Whether a token is sampled after this work: decode steps and a prompt's last chunk.
    public var sample: Bool
    /// Set when the sequence joins (its first chunk); the LM-head rank keeps it.
    public var sampling: SamplingOptions?
    /// Send the logits of every token back (the `logits` command).
    public var returnLogits: Bool
    /// Positions the sequence may reach, to size its cache when it joins.
    public var capacity: Int
    /// Report the sampled token's log-probability and this many top alternatives; nil: none.
    public var logprobs: Int?

    public init(sequenceId: UInt64, attentionRank: Int, phase: Phase, tokens: [Int], startPosition: Int,
                sample: Bool = true, sampling: SamplingOptions? = nil, returnLogits: Bool = false, capacity: Int = 0,
                logprobs: Int? = nil) {
        self.returnLogits = returnLogits
        self.capacity = capacity
        self.logprobs = logprobs
        self.sequenceId = sequenceId
        self.attentionRank = attentionRank
        self.phase = phase
        self.tokens = tokens
        self.startPosition = startPosition
        self.sample = sample
        self.sampling = sampling
    }
}

/// What every rank does in one forward step. A sequence joins by appearing with
/// `startPosition` 0, may prefill over several steps in chunks, and leaves through
/// `finishedSequences`, whose caches are then freed.
public struct StepPlan: Sendable, Hashable {
    public var step: UInt64
    public var work: [SequenceWork]
    public var finishedSequences: [UInt64]

    public init(step: UInt64, work: [SequenceWork], finishedSequences: [UInt64] = []) {
        self.step = step
        self.work = work
        self.finishedSequences = finishedSequences
    }
}

/// One sequence's sampled token.
public struct SequenceToken: Sendable, Hashable {
    public var sequenceId: UInt64
    public var token: Int
    /// Logits rows computed for this sequence; 0 when not reported.
    public var logitsRows: Int
    /// The sampled token's log-probability and top alternatives, when the work asked.
    public var logprobs: TokenLogprobs?

    public init(sequenceId: UInt64, token: Int, logitsRows: Int = 0, logprobs: TokenLogprobs? = nil) {
        self.sequenceId = sequenceId
        self.token = token
        self.logitsRows = logitsRows
        self.logprobs = logprobs
    }
}

/// Sent by the rank that owns the LM head, once per step.
public struct StepResult: Sendable, Hashable {
    public var step: UInt64
    public var tokens: [SequenceToken]

    public init(step: UInt64, tokens: [SequenceToken]) {
        self.step = step
        self.tokens = tokens
    }
}

/// A request is done.
public struct Finish: Sendable, Hashable {
    public enum Reason: String, Sendable, Hashable, CaseIterable {
        case stopToken = "stop_token", stopString = "stop_string", length, cancelled, error
    }

    public var requestId: UInt64
    public var reason: Reason
    public var tokens: [Int]
    public var text: String

    public init(requestId: UInt64, reason: Reason, tokens: [Int], text: String = "") {
        self.requestId = requestId
        self.reason = reason
        self.tokens = tokens
        self.text = text
    }
}

/// One rank's counters. The per-layer arrays are indexed by layer and are either empty
/// or all of one length.
public struct RankStats: Sendable, Hashable {
    public var rank: Int
    public var steps: Int
    public var prefillTokens: Int
    public var decodeTokens: Int
    /// Token-expert pairs computed.
    public var expertTokens: Int
    public var busySeconds: Double
    public var wallSeconds: Double
    public var dispatchSeconds: [Double]
    public var combineSeconds: [Double]
    public var dispatchBytes: [Int]
    public var combineBytes: [Int]

    public init(rank: Int, steps: Int = 0, prefillTokens: Int = 0, decodeTokens: Int = 0, expertTokens: Int = 0,
                busySeconds: Double = 0, wallSeconds: Double = 0,
                dispatchSeconds: [Double] = [], combineSeconds: [Double] = [],
                dispatchBytes: [Int] = [], combineBytes: [Int] = []) {
        self.rank = rank
        self.steps = steps
        self.prefillTokens = prefillTokens
        self.decodeTokens = decodeTokens
        self.expertTokens = expertTokens
        self.busySeconds = busySeconds
        self.wallSeconds = wallSeconds
        self.dispatchSeconds = dispatchSeconds
        self.combineSeconds = combineSeconds
        self.dispatchBytes = dispatchBytes
        self.combineBytes = combineBytes
    }
}

/// A rank reports a failure.
public struct ErrorReport: Sendable, Hashable {
    public enum Code: String, Sendable, Hashable, CaseIterable {
        case `internal`, invalidRequest = "invalid_request", `protocol`, modelMismatch = "model_mismatch",
             outOfMemory = "out_of_memory", peerTimeout = "peer_timeout", transport
    }

    /// Where the error happened (differs from the sender when the report is relayed).
    public var rank: Int
    public var code: Code
    public var message: String

    public init(rank: Int, code: Code, message: String) {
        self.rank = rank
        self.code = code
        self.message = message
    }
}

/// Every rank stops.
public struct Shutdown: Sendable, Hashable {
    public var reason: String
    /// Element counts per expert-communicator rank of a raw all-to-all the router and
    /// expert ranks time before exiting (the profile's baseline); empty for none.
    public var baselineDispatchCounts: [Int]
    public var baselineCombineCounts: [Int]
    public var baselineRepetitions: Int

    public init(reason: String, baselineDispatchCounts: [Int] = [], baselineCombineCounts: [Int] = [], baselineRepetitions: Int = 0) {
        self.reason = reason
        self.baselineDispatchCounts = baselineDispatchCounts
        self.baselineCombineCounts = baselineCombineCounts
        self.baselineRepetitions = baselineRepetitions
    }
}

/// Everything ranks tell each other that is not an activation.
public enum ControlMessage: Sendable, Hashable {
    case hello(Hello)
    case topology(Topology)
    case submitRequest(SubmitRequest)
    case stepPlan(StepPlan)
    case stepResult(StepResult)
    case finish(Finish)
    case stats(RankStats)
    case errorReport(ErrorReport)
    case shutdown(Shutdown)

    /// The message's kind, as named in errors and logs.
    public var kind: String {
        switch self {
        case .hello: "hello"
        case .topology: "topology"
        case .submitRequest: "submit_request"
        case .stepPlan: "step_plan"
        case .stepResult: "step_result"
        case .finish: "finish"
        case .stats: "stats"
        case .errorReport: "error_report"
        case .shutdown: "shutdown"
        }
    }
}
