/// How much a scheduler may put in flight.
public struct SchedulerLimits: Sendable, Equatable {
    /// Sequences generating at once (`--max-num-seqs`).
    public var maxRunning: Int
    /// Tokens in one forward pass (`--max-batch-tokens`): decode tokens first, prompt chunks fill the rest.
    public var stepTokens: Int
    /// Latent-cache positions each pool (attention rank) may hold for admitted sequences.
    public var positionsPerPool: Int

    public init(maxRunning: Int, stepTokens: Int, positionsPerPool: Int) {
        self.maxRunning = maxRunning
        self.stepTokens = stepTokens
        self.positionsPerPool = positionsPerPool
    }

    /// No limit: every request joins at once with its whole prompt (a fixed batch).
    public static let unlimited = SchedulerLimits(maxRunning: .max, stepTokens: .max, positionsPerPool: .max)
}

/// What the scheduler holds at a moment (for metrics and health).
public struct SchedulerLoad: Sendable, Equatable {
    public var running: Int
    public var waiting: Int
    /// Positions reserved by admitted sequences, per pool.
    public var reservedPositions: [Int]
    public var positionsPerPool: Int

    public init(running: Int = 0, waiting: Int = 0, reservedPositions: [Int] = [], positionsPerPool: Int = 0) {
        self.running = running
        self.waiting = waiting
        self.reservedPositions = reservedPositions
        self.positionsPerPool = positionsPerPool
    }
}

/// Builds each step from queue state: admission by cache capacity (a sequence is
/// admitted when a pool can hold its prompt and all its new tokens, so it never needs
/// preempting), then decode work for every running sequence, then prompt chunks under
/// the step's token budget, so a long prompt never stalls the running decodes.
final class Scheduler {
    let limits: SchedulerLimits
    private(set) var waiting: [LiveSequence] = []
    /// In admission order.
    private(set) var running: [LiveSequence] = []
    private var reserved: [Int]

    init(limits: SchedulerLimits, pools: Int) {
        self.limits = limits
        reserved = Array(repeating: 0, count: max(pools, 1))
    }

    var load: SchedulerLoad {
        SchedulerLoad(running: running.count, waiting: waiting.count, reservedPositions: reserved,
                      positionsPerPool: limits.positionsPerPool)
    }

    var isIdle: Bool { waiting.isEmpty && running.isEmpty }

    /// Whether a request of `positions` can ever be admitted.
    func fits(positions: Int) -> Bool { positions <= limits.positionsPerPool }

    func enqueue(_ sequence: LiveSequence) { waiting.append(sequence) }

    /// The next step's work, each with its sequence, admitting waiting sequences as capacity allows.
    func planWork() -> [(sequence: LiveSequence, work: StepPlan.Work)] {
        var budget = limits.stepTokens
        var work: [(sequence: LiveSequence, work: StepPlan.Work)] = []
        for s in running where !s.isPrefilling && budget > 0 {
            work.append((s, s.decodeWork))
            budget -= 1
        }
        for s in running where s.isPrefilling && budget > 0 {
            let chunk = s.prefillWork(budget: budget)
            budget -= chunk.tokens.count
            work.append((s, chunk))
        }
        while budget > 0, running.count < limits.maxRunning, let next = waiting.first, let pool = pool(for: next.reservation) {
            waiting.removeFirst()
            next.pool = pool
            reserved[pool] += next.reservation
            running.append(next)
            let chunk = next.prefillWork(budget: budget)
            budget -= chunk.tokens.count
            work.append((next, chunk))
        }
        return work
    }

    /// The least loaded pool with room for `positions`.
    private func pool(for positions: Int) -> Int? {
        let best = reserved.indices.min { reserved[$0] < reserved[$1] }!
        return limits.positionsPerPool - reserved[best] >= positions ? best : nil
    }

    /// Removes finished and cancelled sequences, freeing their reservations.
    func removeFinished() -> [LiveSequence] {
        let done = running.filter(\.isFinished)
        for s in done { reserved[s.pool!] -= s.reservation }
        running.removeAll(where: \.isFinished)
        return done
    }

    /// Takes a sequence out of the queue before it was admitted.
    func withdraw(_ id: UInt64) -> LiveSequence? {
        guard let i = waiting.firstIndex(where: { $0.id == id }) else { return nil }
        return waiting.remove(at: i)
    }

    func runningSequence(_ id: UInt64) -> LiveSequence? { running.first { $0.id == id } }
}
