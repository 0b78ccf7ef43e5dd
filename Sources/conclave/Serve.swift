import ArgumentParser
import Engine
import Foundation
import HTTPServer
import Logging
import Serving

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the model over an OpenAI-compatible HTTP API with continuous batching.",
        discussion: """
            Under mpirun, rank 0 (the router) listens and every other rank keeps its role. \
            GET /health answers 200 once every rank has loaded. SIGTERM or SIGINT stops accepting, \
            lets running requests finish (cut after --drain-seconds), shuts every rank down and exits 0.
            """)

    @OptionGroup var model: ModelOption
    @OptionGroup var numerics: NumericsOption

    @Option(help: "Address to listen on (loopback by default).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one, printed at start-up).")
    var port = 8000

    @Option(name: .customLong("api-key"), help: "Require 'Authorization: Bearer <key>' on /v1/ routes.")
    var apiKey: String?

    @Option(name: .customLong("served-model-name"), help: "The model name clients send (default: the model directory's name).")
    var servedModelName: String?

    @Option(name: .customLong("max-num-seqs"), help: "Most sequences generating at once.")
    var maxNumSeqs = 16

    @Option(name: .customLong("max-batch-tokens"), help: "Most tokens per forward pass: decode tokens first, prompt chunks fill the rest.")
    var maxBatchTokens = 256

    @Option(name: .customLong("max-queue"), help: "Most requests waiting for admission; more get 429.")
    var maxQueue = 256

    @Option(name: .customLong("max-model-len"), help: "Most positions (prompt + completion) per request (default: the model's context).")
    var maxModelLen: Int?

    @Option(name: .customLong("cache-positions"), help: "Latent-cache positions each attention rank holds for admitted requests (default: max-num-seqs × max-model-len).")
    var cachePositions: Int?

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body accepted; larger gets 413.")
    var maxBodyBytes = 4 << 20

    @Option(name: .customLong("drain-seconds"), help: "On SIGTERM/SIGINT, how long running requests may finish before they are cut.")
    var drainSeconds = 30.0

    @OptionGroup var cluster: ClusterArguments
    @OptionGroup var expertLoad: ExpertLoadOption

    @Option(name: .customLong("record-expert-load-every"), help: "With --record-expert-load: also rewrite the file after a step when this many seconds passed since the last write (it is always written at shutdown, after the drain).")
    var recordExpertLoadEvery = 60.0

    func validate() throws {
        guard maxNumSeqs >= 1 else { throw ValidationError("--max-num-seqs must be ≥ 1") }
        guard maxBatchTokens >= maxNumSeqs else {
            throw ValidationError("--max-batch-tokens (\(maxBatchTokens)) must be ≥ --max-num-seqs (\(maxNumSeqs)): every running sequence decodes each step")
        }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be ≥ 0") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        if let maxModelLen, maxModelLen < 2 { throw ValidationError("--max-model-len must be ≥ 2") }
        if let cachePositions, cachePositions < 2 { throw ValidationError("--cache-positions must be ≥ 2") }
        guard recordExpertLoadEvery > 0 else { throw ValidationError("--record-expert-load-every must be > 0") }
    }

    func run() throws {
        numerics.apply()
        let frontEnd = FrontEnd()
        do {
            try Executor.run(model: model.url, cluster: cluster, beforeLoading: {
                try frontEnd.start(try makeServer())
            }) { executor in
                let server = frontEnd.server!
                let generator = Generator(executor: executor.stepExecutor, tokenizer: server.model.tokenizer,
                                          limits: server.engine.options.limits)
                let recorder = try expertLoad.recordExpertLoad.map {
                    try ExpertLoadRecorder(file: URL(fileURLWithPath: $0), model: model.url, executor: executor)
                }
                do {
                    try server.engine.run(generator) {
                        do { try recorder?.writeIfDue(every: recordExpertLoadEvery) } catch { log.error("\(error)") }
                    }
                } catch {
                    frontEnd.stop()
                    throw error
                }
                // The engine has drained: the final record covers every request served.
                try recorder?.write()
            }
        } catch {
            frontEnd.stop()
            throw error
        }
        try frontEnd.wait()
    }

    private func makeServer() throws -> OpenAIServer {
        let served = try ServedModel(directory: model.url, name: servedModelName, maxModelLength: maxModelLen)
        let positions = cachePositions ?? maxNumSeqs * served.contextLength
        let limits = SchedulerLimits(maxRunning: maxNumSeqs, stepTokens: maxBatchTokens, positionsPerPool: positions)
        let factory = OpenAIServer.makeMetricsFactory()
        let engine = ServingEngine(options: .init(limits: limits, maxQueue: maxQueue), metrics: ServingMetrics(factory: factory))
        var httpLog = log
        httpLog[metadataKey: "role"] = "http"
        return OpenAIServer(engine: engine, model: served,
                            options: ServerOptions(host: host, port: port, apiKey: apiKey, maxBodyBytes: maxBodyBytes, drainSeconds: drainSeconds),
                            metricsFactory: factory, logger: httpLog)
    }
}

/// The HTTP side of `serve` on rank 0: started before the weights load (so /health can
/// say 503 while they do), run on Swift's concurrency threads while the calling thread
/// runs the engine loop.
private final class FrontEnd: @unchecked Sendable {
    private(set) var server: OpenAIServer?
    private let listening = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var failure: Error?

    func start(_ server: OpenAIServer) throws {
        self.server = server
        let host = server.options.host
        Task.detached {
            do {
                try await server.run { port in
                    log.info("listening on http://\(host):\(port)")
                    self.listening.signal()
                }
            } catch {
                self.failure = error
                self.listening.signal()
            }
            self.finished.signal()
        }
        listening.wait()
        if let failure {
            throw ValidationError("cannot listen on \(host):\(server.options.port): \(failure)")
        }
    }

    /// Ends the front end after a failure (loading or a step): the engine stops taking requests.
    func stop() {
        guard let server else { return }
        server.engine.stop()
        Task { await server.shutdown() }
    }

    /// Waits for the listener to close (after the engine drained).
    func wait() throws {
        guard server != nil else { return }
        finished.wait()
        if let failure { throw failure }
    }
}
