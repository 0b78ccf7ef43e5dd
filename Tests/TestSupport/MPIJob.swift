import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One child process started in a session of its own (`setsid`), so that it and everything it
/// starts — mpirun and its rank processes, which Open MPI puts in process groups of their own but
/// which stay in mpirun's session — can be found by session id in /proc, killed on a timeout, and
/// checked for leftovers once it ends. Standard output and error go to files in a scratch directory.
/// Safe to use from several tasks: the top process's end is recorded under a lock.
public final class MPIJob: @unchecked Sendable {
    /// How the top process ended.
    public enum Termination: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        public var description: String {
            switch self {
            case .exited(let code): "exit status \(code)"
            case .signaled(let signal): "signal \(signal)"
            }
        }
    }

    /// What a finished job left behind.
    public struct Result: Sendable {
        public let command: String
        public let termination: Termination
        /// True when the hard timeout killed the job.
        public let timedOut: Bool
        /// From start to the top process's end.
        public let seconds: Double
        public let stdout: String
        public let stderr: String
        /// Processes of the job's session still running (not zombies) after the grace period;
        /// they have been SIGKILLed since, but their presence is a defect.
        public let leftovers: [String]

        public var succeeded: Bool { termination == .exited(0) && !timedOut }
        public var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
        public var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

        /// Everything needed to understand a failure, for assertion messages.
        public var report: String {
            let cap = 6000
            func clip(_ s: String) -> String { s.count <= cap ? s : String(s.prefix(cap)) + "\n… (\(s.count - cap) more characters)" }
            return "$ \(command)\n→ \(termination)\(timedOut ? " (timed out, killed)" : "") after \(String(format: "%.2f", seconds)) s"
                + "\n--- stdout ---\n\(clip(stdout))\n--- stderr ---\n\(clip(stderr))"
        }
    }

    /// One process as /proc sees it.
    public struct ProcessEntry: Sendable {
        public let pid: pid_t
        public let parent: pid_t
        public let session: pid_t
        public let state: Character
        public let name: String
    }

    public let pid: pid_t
    public let command: String
    public let started = Date()
    private let scratch: URL
    private let stdoutURL: URL
    private let stderrURL: URL
    private let statusLock = NSLock()
    /// Set once the top process has been reaped; guarded by `statusLock`.
    private var reapedStatus: Termination?
    private var status: Termination? { statusLock.withLock { reapedStatus } }

    /// Starts `executable` with `arguments` in a new session, stdin from /dev/null.
    public init(executable: String, arguments: [String], environment: [String]) throws {
        command = ([executable] + arguments).map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-run-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        stdoutURL = scratch.appendingPathComponent("stdout")
        stderrURL = scratch.appendingPathComponent("stderr")

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID (glibc ≥ 2.26) is 0x80; the C macro does not import everywhere.
        let setsid: Int32 = 0x80
        posix_spawnattr_setflags(&attributes, Int16(setsid | Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)))
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { for p in argv + envp { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "posix_spawn \(executable): \(String(cString: strerror(rc)))"])
        }
        pid = child
    }

    deinit {
        if status == nil { killSession(); reap(block: true) }
        try? FileManager.default.removeItem(at: scratch)
    }

    public var stdoutText: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    public var stderrText: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
    public var elapsed: Double { Date().timeIntervalSince(started) }

    /// Whether the top process is still running (reaps it when it has ended).
    public var isRunning: Bool {
        reap(block: false)
        return status == nil
    }

    private func reap(block: Bool) {
        statusLock.lock()
        defer { statusLock.unlock() }
        guard reapedStatus == nil else { return }
        var raw: Int32 = 0
        let r = waitpid(pid, &raw, block ? 0 : WNOHANG)
        guard r == pid else { return }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros: decode the wait status by hand.
        let signal = raw & 0x7f
        reapedStatus = signal == 0 ? .exited((raw >> 8) & 0xff) : .signaled(signal)
    }

    /// Sends `signal` to the top process (mpirun, or the plain process) if it is still running.
    @discardableResult
    public func send(_ signal: Int32) -> Bool {
        isRunning && kill(pid, signal) == 0
    }

    // MARK: /proc

    public static func entry(_ pid: pid_t) -> ProcessEntry? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        let name = String(text[text.index(after: open)..<close])
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count >= 4, let state = fields[0].first, let parent = pid_t(fields[1]),
              let session = pid_t(fields[3]) else { return nil }
        return ProcessEntry(pid: pid, parent: parent, session: session, state: state, name: name)
    }

    public static func allProcesses() -> [ProcessEntry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { pid_t($0) }.compactMap(entry)
    }

    /// Every process of this job's session (the top process included while it is not reaped).
    public func sessionMembers() -> [ProcessEntry] {
        Self.allProcesses().filter { $0.session == pid }
    }

    /// Live (non-zombie) processes of the session other than the top process.
    public func liveDescendants() -> [ProcessEntry] {
        sessionMembers().filter { $0.pid != pid && $0.state != "Z" && $0.state != "X" }
    }

    /// The direct child of the top process (an mpirun rank) whose environment says it is world rank `rank`.
    public func rankProcess(_ rank: Int) -> pid_t? {
        for p in Self.allProcesses() where p.parent == pid {
            guard let data = FileManager.default.contents(atPath: "/proc/\(p.pid)/environ") else { continue }
            let variables = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return p.pid }
        }
        return nil
    }

    /// SIGKILLs every process of the session (only this job's processes carry its session id).
    public func killSession() {
        for p in sessionMembers() where p.state != "Z" { kill(p.pid, SIGKILL) }
        if status == nil { kill(pid, SIGKILL) }
    }

    // MARK: ending

    /// Waits for the top process to end, killing the whole session at `timeout` seconds after start;
    /// then gives the session `grace` seconds to disappear and reports (and kills) what is left.
    public func finish(timeout: Double, grace: Double = 5) -> Result {
        var timedOut = false
        while isRunning {
            if elapsed > timeout {
                timedOut = true
                killSession()
                reap(block: true)
                break
            }
            usleep(20_000)
        }
        let seconds = elapsed
        let graceEnd = Date().addingTimeInterval(grace)
        var left = liveDescendants()
        while !left.isEmpty && Date() < graceEnd {
            usleep(50_000)
            left = liveDescendants()
        }
        return result(timedOut: timedOut, seconds: seconds, killing: left)
    }

    /// The async form of `finish` for tests on Swift's concurrency threads (it sleeps instead of
    /// blocking one): waits up to `timeout` seconds from now for the top process to end, killing
    /// the whole session then; gives the session `grace` seconds to disappear and reports (and
    /// kills) what is left.
    public func finish(within timeout: Double, grace: Double = 5) async -> Result {
        let end = Date().addingTimeInterval(timeout)
        var timedOut = false
        while isRunning {
            if Date() > end {
                timedOut = true
                killSession()
                reap(block: true)
                break
            }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        let seconds = elapsed
        let graceEnd = Date().addingTimeInterval(grace)
        var left = liveDescendants()
        while !left.isEmpty && Date() < graceEnd {
            try? await Task.sleep(nanoseconds: 50_000_000)
            left = liveDescendants()
        }
        return result(timedOut: timedOut, seconds: seconds, killing: left)
    }

    /// The result of the ended job; SIGKILLs `leftovers` (live processes of its session).
    private func result(timedOut: Bool, seconds: Double, killing leftovers: [ProcessEntry]) -> Result {
        for p in leftovers { kill(p.pid, SIGKILL) }
        return Result(command: command, termination: status!, timedOut: timedOut, seconds: seconds,
                      stdout: stdoutText, stderr: stderrText,
                      leftovers: leftovers.map { "pid \($0.pid) (\($0.name), state \($0.state))" })
    }

    /// Polls until `condition` holds or `timeout` seconds pass (or the job ends); returns whether it held.
    public func wait(upTo timeout: Double, until condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            if !isRunning { return condition() }
            usleep(20_000)
        }
        return condition()
    }

    /// The async form of `wait(upTo:until:)`: sleeps between polls instead of blocking a thread.
    public func poll(upTo timeout: Double, until condition: () -> Bool) async -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            if !isRunning { return condition() }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return condition()
    }
}

/// Launching the built `conclave`, alone or under `mpirun`.
public enum Conclave {
    /// The build products directory: where the test bundle lives, next to `conclave`.
    public static var productsDirectory: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// The package's root directory (this file is Tests/TestSupport/MPIJob.swift).
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    public static func fixture(_ name: String) -> URL {
        packageRoot.appendingPathComponent("Tests/Fixtures/models/\(name)")
    }

    /// `name` with a context long enough for a generation that outlasts the test's actions
    /// (generation stops at `max_position_embeddings`).
    public static func longContextFixture(_ name: String) throws -> URL {
        try fixtureCopy(name, as: "long") { $0["max_position_embeddings"] = 1 << 20 }
    }

    /// A temporary copy of fixture `name`: links to its files and an edited config.json.
    public static func fixtureCopy(_ name: String, as label: String, editing edit: (inout [String: Any]) -> Void) throws -> URL {
        let source = fixture(name)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-\(label)-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: source.path) where file != "config.json" {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(file), withDestinationURL: source.appendingPathComponent(file))
        }
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        return dir
    }

    /// The `conclave` executable, or a test failure saying where it was expected.
    public static func binary(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let path = productsDirectory.appendingPathComponent("conclave").path
        try #require(FileManager.default.isExecutableFile(atPath: path),
                     "conclave is not built next to the tests at \(path): build it with `swift build --build-tests` (same --scratch-path)",
                     sourceLocation: sourceLocation)
        return path
    }

    public static func mpirunPath(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        try #require(Bool(false), "mpirun not on PATH (apt-get install openmpi-bin)", sourceLocation: sourceLocation)
        return ""
    }

    /// This process's environment without the launcher variables a singleton MPI start (in
    /// another suite of this process) adds: an mpirun inheriting them exits 1 silently, and a
    /// plain `conclave` inheriting them would believe it runs under mpirun.
    public static var childEnvironment: [String] {
        let prefixes = ["OMPI_", "PMIX_", "ORTE_", "OPAL_"]
        return ProcessInfo.processInfo.environment
            .filter { key, _ in !prefixes.contains { key.hasPrefix($0) } }
            .map { "\($0.key)=\($0.value)" }
            .sorted()
    }

    /// Starts `conclave arguments…` as a plain child process (no MPI), with `environment`
    /// (`NAME=value`) added to `childEnvironment`.
    public static func startLocal(_ arguments: [String], environment: [String] = [],
                                  sourceLocation: SourceLocation = #_sourceLocation) throws -> MPIJob {
        try MPIJob(executable: binary(sourceLocation: sourceLocation), arguments: arguments, environment: childEnvironment + environment)
    }

    /// Starts `mpirun -np ranks … conclave arguments…` over shared memory.
    public static func startMPI(ranks: Int, _ arguments: [String], mpiOptions: [String] = [],
                         sourceLocation: SourceLocation = #_sourceLocation) throws -> MPIJob {
        let conclave = try binary(sourceLocation: sourceLocation)
        var options = ["--oversubscribe", "-np", "\(ranks)", "--mca", "btl", "self,vader"] + mpiOptions
        if getuid() == 0 { options.insert("--allow-run-as-root", at: 0) }
        return try MPIJob(executable: try mpirunPath(sourceLocation: sourceLocation), arguments: options + [conclave] + arguments,
                          environment: childEnvironment)
    }

    /// Runs `conclave` alone to the end (hard timeout `timeout` s).
    public static func local(_ arguments: [String], environment: [String] = [], timeout: Double = 30,
                      sourceLocation: SourceLocation = #_sourceLocation) throws -> MPIJob.Result {
        let result = try startLocal(arguments, environment: environment, sourceLocation: sourceLocation).finish(timeout: timeout)
        expectClean(result, sourceLocation: sourceLocation)
        return result
    }

    /// Runs `conclave` under mpirun to the end (hard timeout `timeout` s).
    public static func mpi(ranks: Int, _ arguments: [String], mpiOptions: [String] = [], timeout: Double = 45,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> MPIJob.Result {
        let result = try startMPI(ranks: ranks, arguments, mpiOptions: mpiOptions, sourceLocation: sourceLocation)
            .finish(timeout: timeout)
        expectClean(result, sourceLocation: sourceLocation)
        return result
    }

    /// Every job: it ended before its timeout and left no process of its own running.
    public static func expectClean(_ result: MPIJob.Result, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!result.timedOut, "the job hit its hard timeout\n\(result.report)", sourceLocation: sourceLocation)
        #expect(result.leftovers.isEmpty, "processes of the job were still running after it ended: \(result.leftovers)\n\(result.report)",
                sourceLocation: sourceLocation)
    }
}
