import Engine
import Foundation
import Sampling

/// Why a request was not taken.
public enum SubmissionError: Error, Equatable, CustomStringConvertible {
    /// The model is still loading (on some rank).
    case loading
    /// The server is shutting down.
    case draining
    /// `--max-queue` requests already wait.
    case queueFull(limit: Int)
    /// The request can never run on this model or these limits.
    case invalid(String)

    public var description: String {
        switch self {
        case .loading: "the model is still loading"
        case .draining: "the server is shutting down"
        case .queueFull(let n): "\(n) requests are already waiting; try again later"
        case .invalid(let message): message
        }
    }
}

/// Where the engine stands, for health checks and metrics.
public enum EngineState: String, Sendable {
    case loading, ready, draining, stopped
}

/// A request's timings, reported with its last update.
public struct RequestTiming: Sendable, Equatable {
    /// Submission to first token.
    public var timeToFirstToken: Double?
    /// Submission to last update.
    public var total: Double
}

/// One update of a request's stream.
public struct ServedUpdate: Sendable {
    public var update: GenerationUpdate
    /// Set on the last update.
    public var timing: RequestTiming?
}

/// The serving engine: requests arrive from any thread (HTTP handlers) into a queue; one
/// thread — the one that owns the executor, under MPI rank 0's main thread — runs the
/// `Generator` loop forever, taking new requests and cancellations between any two steps
/// and streaming every sequence's updates back to its submitter.
public final class ServingEngine: @unchecked Sendable {
    public struct Options: Sendable {
        public var limits: SchedulerLimits
        /// Requests that may wait for admission before new ones get `queueFull`.
        public var maxQueue: Int

        public init(limits: SchedulerLimits, maxQueue: Int) {
            self.limits = limits
            self.maxQueue = maxQueue
        }
    }

    public let options: Options
    public let metrics: ServingMetrics
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var state = EngineState.loading
    private var inbox: [(id: UInt64, request: GenerationRequest)] = []
    /// Arrivals taken from the inbox whose submission the load does not show yet.
    private var inTransit = 0
    private var cancellations: [UInt64] = []
    private var cutRunning = false
    private var streams: [UInt64: AsyncThrowingStream<ServedUpdate, Error>.Continuation] = [:]
    private var nextId: UInt64 = 1
    private var validate: ((GenerationRequest) throws -> GenerationRequest)?
    private var load = SchedulerLoad()
    // Engine thread only.
    private var started: [UInt64: (submitted: UInt64, firstToken: UInt64?, promptTokens: Int)] = [:]

    public init(options: Options, metrics: ServingMetrics = ServingMetrics()) {
        self.options = options
        self.metrics = metrics
    }

    public var currentState: EngineState { condition.withLock { state } }

    /// Sequences running and waiting, and cache reservations per pool.
    public var currentLoad: SchedulerLoad { condition.withLock { load } }

    /// Queues a request; its updates arrive on the returned stream, which ends after the
    /// update carrying the result. Ending the stream early (a client gone) cancels it.
    public func submit(_ request: GenerationRequest) throws(SubmissionError) -> (id: UInt64, updates: AsyncThrowingStream<ServedUpdate, Error>) {
        condition.lock()
        defer { condition.unlock() }
        switch state {
        case .loading: throw .loading
        case .draining, .stopped: throw .draining
        case .ready: break
        }
        let fitted: GenerationRequest
        do { fitted = try validate!(request) } catch { throw .invalid("\(error)") }
        // Waiting: not yet handed to the generator, or handed and not yet admitted.
        guard inbox.count + inTransit + load.waiting < options.maxQueue else { throw .queueFull(limit: options.maxQueue) }
        let id = nextId
        nextId += 1
        let (stream, continuation) = AsyncThrowingStream<ServedUpdate, Error>.makeStream()
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.cancel(id) }
        }
        streams[id] = continuation
        inbox.append((id, fitted))
        condition.signal()
        return (id, stream)
    }

    /// Cancels a request (its client went away); its cache is freed at the next step.
    public func cancel(_ id: UInt64) {
        condition.withLock {
            guard streams[id] != nil else { return }
            cancellations.append(id)
            condition.signal()
        }
    }

    /// Runs the engine loop on the calling thread until `drain` has finished: takes new
    /// requests, cancellations and steps the generator. Step errors end every request
    /// with the error and are rethrown (the executor is then in an unknown state).
    /// `afterStep` runs on this thread after every step (periodic work such as rewriting a
    /// recorded expert load).
    public func run(_ generator: Generator, afterStep: () -> Void = {}) throws {
        if let reporter = generator.executor as? ReportsMoELayers { reporter.collectsLayerSamples = true }
        condition.withLock {
            validate = { try generator.admissible($0) }
            load = generator.load
            if state == .loading { state = .ready }
        }
        metrics.record(load: generator.load)
        while true {
            condition.lock()
            while inbox.isEmpty && cancellations.isEmpty && !cutRunning && !generator.hasWork && state != .stopped {
                if state == .draining && !generator.hasWork { state = .stopped; break }
                condition.wait()
            }
            if state == .stopped && !generator.hasWork && inbox.isEmpty {
                condition.unlock()
                return
            }
            let arrivals = inbox, cancelled = cancellations, cut = cutRunning
            inbox = []
            inTransit = arrivals.count
            cancellations = []
            cutRunning = false
            condition.unlock()

            let now = DispatchTime.now().uptimeNanoseconds
            for (id, request) in arrivals {
                do {
                    try generator.submit(request, id: id)
                    started[id] = (now, nil, request.prompt.count)
                } catch {
                    end(id, with: error)
                }
            }
            for id in cancelled { generator.cancel(id) }
            if cut { generator.cancelAll() }
            // The arrivals now count as waiting in the generator's load, not in the inbox.
            let queued = generator.load
            condition.withLock {
                load = queued
                inTransit = 0
            }
            let updates: [GenerationUpdate]
            do {
                updates = try generator.step()
            } catch {
                condition.withLock { for id in streams.keys { streams[id]?.finish(throwing: error) } ; streams = [:]; state = .stopped }
                throw error
            }
            deliver(updates)
            let stats = generator.load
            condition.withLock { load = stats }
            metrics.record(load: stats)
            metrics.record(step: generator.lastStep)
            if let reporter = generator.executor as? ReportsMoELayers { metrics.record(layers: reporter.takeMoELayerSamples()) }
            afterStep()
        }
    }

    private func deliver(_ updates: [GenerationUpdate]) {
        let now = DispatchTime.now().uptimeNanoseconds
        var timings: [UInt64: RequestTiming] = [:]
        for u in updates {
            guard var times = started[u.id] else { continue }
            if u.token != nil && times.firstToken == nil {
                times.firstToken = now
                started[u.id] = times
            }
            if let result = u.finished {
                started[u.id] = nil
                let ttft = times.firstToken.map { Double($0 - times.submitted) / 1e9 }
                let timing = RequestTiming(timeToFirstToken: ttft, total: Double(now - times.submitted) / 1e9)
                timings[u.id] = timing
                metrics.record(finished: result, promptTokens: times.promptTokens, timing: timing)
            }
        }
        condition.withLock {
            for u in updates {
                guard let stream = streams[u.id] else { continue }
                stream.yield(ServedUpdate(update: u, timing: timings[u.id]))
                if u.finished != nil {
                    stream.finish()
                    streams[u.id] = nil
                }
            }
        }
    }

    private func end(_ id: UInt64, with error: Error) {
        condition.withLock {
            streams.removeValue(forKey: id)?.finish(throwing: error)
        }
    }

    /// Stops taking requests, lets running ones finish for up to `grace` seconds, then cuts
    /// them; returns once the engine loop has ended.
    public func drain(grace: Double) async {
        condition.withLock {
            if state == .ready || state == .loading { state = .draining }
            condition.signal()
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(grace, 0) * 1e9)
        while currentState != .stopped {
            if DispatchTime.now().uptimeNanoseconds >= deadline {
                condition.withLock {
                    cutRunning = true
                    condition.signal()
                }
            }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
    }

    /// Ends the loop without a generator ever attached (loading failed or was interrupted).
    public func stop() {
        condition.withLock {
            state = .stopped
            condition.signal()
        }
    }
}
