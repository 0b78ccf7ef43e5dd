import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A running `conclave serve` — one process, or an mpirun job whose rank 0 listens — started
/// in a session of its own (see `MPIJob`) on a free loopback port. `start` returns once the
/// server has logged the port it bound; `stop` (or `finish`) ends it and checks that nothing of
/// its session is left running. `ServerProcess.run` stops the server whatever its body does.
public final class ServerProcess: Sendable {
    public let job: MPIJob
    public let port: Int
    /// `http://127.0.0.1:<port>`.
    public let baseURL: String

    /// Why a server did not come up: it ended, or it did not log its port in time.
    public struct StartFailure: Error, CustomStringConvertible {
        public let reason: String
        public let report: String
        public var description: String { "\(reason)\n\(report)" }
    }

    private init(job: MPIJob, port: Int) {
        self.job = job
        self.port = port
        baseURL = "http://127.0.0.1:\(port)"
    }

    /// Starts `conclave serve --model model --host 127.0.0.1 --port 0 options…`, alone or under
    /// `mpirun -np ranks --bind-to none`, and waits up to `listenTimeout` seconds for the line
    /// "listening on http://127.0.0.1:PORT" on stderr. The server may still be loading (GET
    /// /health answers 503 until it is ready; see `waitUntilReady`).
    public static func start(model: URL, options: [String] = [], ranks: Int? = nil, listenTimeout: Double = 60,
                             sourceLocation: SourceLocation = #_sourceLocation) async throws -> ServerProcess {
        let arguments = ["serve", "--model", model.path, "--host", "127.0.0.1", "--port", "0"] + options
        let job = if let ranks {
            // --bind-to none: ranks float over the cores (four ranks oversubscribe two cores).
            try Conclave.startMPI(ranks: ranks, arguments, mpiOptions: ["--bind-to", "none"], sourceLocation: sourceLocation)
        } else {
            try Conclave.startLocal(arguments, sourceLocation: sourceLocation)
        }
        var port: Int?
        _ = await job.poll(upTo: listenTimeout) {
            port = listeningPort(in: job.stderrText)
            return port != nil
        }
        guard let port else {
            let reason = job.isRunning ? "the server did not log its port within \(listenTimeout) s" : "the server ended before it listened"
            let result = await job.finish(within: 0)
            throw StartFailure(reason: reason, report: result.report)
        }
        return ServerProcess(job: job, port: port)
    }

    /// The port of the line "listening on http://HOST:PORT" in `log`.
    static func listeningPort(in log: String) -> Int? {
        guard let range = log.range(of: #"listening on http://[^\s:]+:[0-9]+"#, options: .regularExpression) else { return nil }
        return Int(log[range].split(separator: ":").last!)
    }

    /// Starts a server, runs `body` with it, then stops it (SIGKILL to its whole session if it
    /// is still running) and records an issue for any process of the session left behind.
    public static func run<T>(model: URL, options: [String] = [], ranks: Int? = nil,
                              sourceLocation: SourceLocation = #_sourceLocation,
                              _ body: (ServerProcess) async throws -> T) async throws -> T {
        let server = try await start(model: model, options: options, ranks: ranks, sourceLocation: sourceLocation)
        do {
            let value = try await body(server)
            await server.stop(sourceLocation: sourceLocation)
            return value
        } catch {
            await server.stop(sourceLocation: sourceLocation)
            throw error
        }
    }

    public var stderrText: String { job.stderrText }

    /// Sends `signal` to the top process: the plain server, or mpirun.
    @discardableResult
    public func send(_ signal: Int32) -> Bool { job.send(signal) }

    /// Sends `signal` to the rank 0 process of an mpirun job (the router, which serves HTTP).
    public func sendToRankZero(_ signal: Int32, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let rank0 = try #require(job.rankProcess(0), "no child of mpirun has OMPI_COMM_WORLD_RANK=0", sourceLocation: sourceLocation)
        #expect(kill(rank0, signal) == 0, "kill(\(rank0), \(signal)) failed", sourceLocation: sourceLocation)
    }

    /// Waits up to `timeout` seconds for the server to end by itself (after a signal), killing
    /// its session then; the result tells how it ended and what it left running.
    public func finish(within timeout: Double) async -> MPIJob.Result {
        await job.finish(within: timeout)
    }

    /// Ends the server now if it still runs (SIGKILL to its whole session) and records an issue
    /// for processes of the session that outlive it.
    public func stop(sourceLocation: SourceLocation = #_sourceLocation) async {
        job.killSession()
        let result = await job.finish(within: 10)
        #expect(result.leftovers.isEmpty, "processes of the server were still running after it was killed: \(result.leftovers)",
                sourceLocation: sourceLocation)
    }
}

extension Conclave {
    /// A fresh copy of the tiny preset (`conclave init-model --preset tiny`) in a temporary
    /// directory named `name` (the server's default model name). `dtype` "f32" stores the same
    /// weights as f32, whose products do not round activations to bf16 (see `Linear`).
    public static func tinyModel(named name: String = "tiny", dtype: String = "bf16",
                                 sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-model-\(getpid())-\(UUID().uuidString)")
        let directory = parent.appendingPathComponent(name)
        let result = try local(["init-model", "--preset", "tiny", "--dtype", dtype, "--out", directory.path], sourceLocation: sourceLocation)
        try #require(result.succeeded, "init-model failed\n\(result.report)", sourceLocation: sourceLocation)
        return directory
    }

    /// The context length of the model in `directory` (`max_position_embeddings` of its config.json).
    public static func contextLength(of directory: URL, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
        let data = try Data(contentsOf: directory.appendingPathComponent("config.json"))
        let config = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], sourceLocation: sourceLocation)
        return try #require(config["max_position_embeddings"] as? Int, "config.json has no max_position_embeddings",
                            sourceLocation: sourceLocation)
    }
}
