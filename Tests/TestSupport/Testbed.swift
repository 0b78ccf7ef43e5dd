import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cluster/testbed` from tests: hosts as network namespaces on one machine, each with its own
/// address, hostname, model directory, memory cgroup and rate-limited link, and `mpirun` across
/// them over TCP. One test bed exists per machine (its objects are named `cvtb-*`), so a test
/// holds `Testbed.Lock` from `up` to `down` (`Testbed.session`), which also keeps two test
/// processes on one machine from tearing down each other's hosts.
public enum Testbed {
    /// The script, in this checkout.
    public static var script: String { Conclave.packageRoot.appendingPathComponent("cluster/testbed").path }

    /// Where the script keeps its state (its default; tests do not move it).
    public static let stateDirectory = "/run/conclave-testbed"

    /// The cgroup directory under which each host has its memory cgroup.
    public static let cgroupRoot = "/sys/fs/cgroup/memory/conclave-testbed"

    /// Whether this process runs as root (namespaces, tc and cgroups need it).
    public static var isRoot: Bool { getuid() == 0 }

    /// Whether `ip netns`, `tc`, `unshare`, `mpirun` and a writable cgroup v1 memory controller
    /// are here: what the test bed is made of.
    public static var isSupported: Bool {
        guard isRoot, access("/sys/fs/cgroup/memory", W_OK) == 0 else { return false }
        for tool in ["ip", "tc", "unshare", "mpirun"] where !onPath(tool) { return false }
        guard let job = try? MPIJob(executable: "/bin/sh", arguments: ["-c", "ip netns list"], environment: Conclave.childEnvironment)
        else { return false }
        return job.finish(timeout: 10, grace: 1).succeeded
    }

    static func onPath(_ tool: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
    }

    /// The environment the script runs with: this process's, without MPI launcher variables,
    /// with `CONCLAVE_BIN` set to the `conclave` built next to the tests, and
    /// `TESTBED_LOCK_HELD=1`: the test holds the machine's test-bed lock (`Lock`), so the
    /// script's `up` and `down` do not wait for it.
    public static func environment(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let binary = try Conclave.binary(sourceLocation: sourceLocation)
        return Conclave.childEnvironment.filter { !$0.hasPrefix("CONCLAVE_BIN=") && !$0.hasPrefix("TESTBED_LOCK_HELD=") }
            + ["CONCLAVE_BIN=\(binary)", "TESTBED_LOCK_HELD=1"]
    }

    /// Starts `cluster/testbed arguments…` (in a session of its own; see `MPIJob`).
    public static func start(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> MPIJob {
        try MPIJob(executable: script, arguments: arguments, environment: environment(sourceLocation: sourceLocation))
    }

    /// Runs `cluster/testbed arguments…` to the end (hard timeout `timeout` s).
    public static func command(_ arguments: [String], timeout: Double = 60,
                               sourceLocation: SourceLocation = #_sourceLocation) throws -> MPIJob.Result {
        try start(arguments, sourceLocation: sourceLocation).finish(timeout: timeout)
    }

    /// `cluster/testbed up options…`, required to succeed.
    public static func up(_ options: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try command(["up"] + options, timeout: 60, sourceLocation: sourceLocation)
        try #require(result.succeeded, "cluster/testbed up failed\n\(result.report)", sourceLocation: sourceLocation)
    }

    /// `cluster/testbed down`; returns what it left (see `leftovers`), which should be nothing.
    @discardableResult
    public static func down(sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
        let result = try? command(["down"], timeout: 60, sourceLocation: sourceLocation)
        if let result, !result.succeeded {
            Issue.record("cluster/testbed down failed\n\(result.report)", sourceLocation: sourceLocation)
        }
        return leftovers()
    }

    /// `cluster/testbed run options… -- conclave arguments…`, to the end; the script's own
    /// `--timeout` is `timeout`, and the test's hard limit 15 s more.
    public static func run(_ conclave: [String], options: [String] = [], timeout: Double = 60,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> MPIJob.Result {
        try command(["run", "--timeout", "\(Int(timeout))"] + options + ["--"] + conclave, timeout: timeout + 15,
                    sourceLocation: sourceLocation)
    }

    /// `cluster/testbed exec HOST -- command…`.
    public static func exec(_ host: String, _ command: [String], timeout: Double = 30,
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> MPIJob.Result {
        try self.command(["exec", host, "--timeout", "\(Int(timeout))", "--"] + command, timeout: timeout + 10,
                         sourceLocation: sourceLocation)
    }

    /// One host's memory cgroup, as `cluster/testbed stats` prints it.
    public struct HostMemory: Sendable, CustomStringConvertible {
        public let host: String
        public let address: String
        /// The limit in bytes, nil when the host has none.
        public let limit: Int?
        public let usage: Int
        /// Peak bytes since the last `run` began (memory.max_usage_in_bytes).
        public let peak: Int
        /// OOM kills in the host since `up` (memory.oom_control's oom_kill), nil when the kernel does not count them.
        public let oomKills: Int?

        public var description: String {
            func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }
            return "\(host): peak \(mib(peak))" + (limit.map { " of \(mib($0))" } ?? " (no limit)") + ", OOM kills \(oomKills.map(String.init) ?? "-")"
        }
    }

    /// Every host's memory, by host name.
    public static func memory(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: HostMemory] {
        let result = try command(["stats"], timeout: 30, sourceLocation: sourceLocation)
        try #require(result.succeeded, "cluster/testbed stats failed\n\(result.report)", sourceLocation: sourceLocation)
        var hosts: [String: HostMemory] = [:]
        for line in result.stdoutLines.dropFirst() {
            let f = line.split(separator: " ").map(String.init)
            try #require(f.count == 6, "unexpected stats line: \(line)", sourceLocation: sourceLocation)
            hosts[f[0]] = HostMemory(host: f[0], address: f[1], limit: Int(f[2]), usage: Int(f[3]) ?? 0, peak: Int(f[4]) ?? 0,
                                     oomKills: Int(f[5]))
        }
        return hosts
    }

    /// Processes in the hosts' namespaces (`cluster/testbed pids`), as "host pid name".
    public static func processes(host: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let result = try command(["pids"] + (host.map { [$0] } ?? []), timeout: 30, sourceLocation: sourceLocation)
        try #require(result.succeeded, "cluster/testbed pids failed\n\(result.report)", sourceLocation: sourceLocation)
        return result.stdoutLines
    }

    /// Whatever of a test bed exists on this machine: `cvtb-*` network namespaces and links,
    /// the memory cgroups, the state directory. Empty when none is up.
    public static func leftovers() -> [String] {
        var found: [String] = []
        let namespaces = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        found += namespaces.filter { $0.hasPrefix("cvtb-") }.map { "network namespace \($0)" }
        let links = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []
        found += links.filter { $0.hasPrefix("cvtb-") }.map { "link \($0)" }
        if FileManager.default.fileExists(atPath: cgroupRoot) { found.append("cgroup \(cgroupRoot)") }
        if FileManager.default.fileExists(atPath: stateDirectory) { found.append("state \(stateDirectory)") }
        return found
    }

    /// An exclusive hold on the machine's test bed (flock on /run/conclave-testbed.lock, the
    /// lock `cluster/testbed up` and `down` wait for), released when the value is deinitialised.
    public final class Lock: @unchecked Sendable {
        private let fd: Int32

        /// Waits up to `timeout` seconds for the lock.
        public init(timeout: Double = 120, sourceLocation: SourceLocation = #_sourceLocation) throws {
            fd = open("/run/conclave-testbed.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
            try #require(fd >= 0, "cannot open /run/conclave-testbed.lock: \(String(cString: strerror(errno)))",
                         sourceLocation: sourceLocation)
            let end = Date().addingTimeInterval(timeout)
            while flock(fd, LOCK_EX | LOCK_NB) != 0 {
                if Date() > end {
                    close(fd)
                    try #require(Bool(false), "another process held the test bed for \(timeout) s", sourceLocation: sourceLocation)
                }
                usleep(100_000)
            }
        }

        deinit { close(fd) }
    }

    /// Takes the lock, brings a test bed up with `options`, runs `body`, and takes it down
    /// again however `body` ends; records an issue when `down` leaves anything behind.
    public static func session<T>(_ options: [String], sourceLocation: SourceLocation = #_sourceLocation,
                                  _ body: () throws -> T) throws -> T {
        let lock = try Lock(sourceLocation: sourceLocation)
        defer {
            let left = down(sourceLocation: sourceLocation)
            #expect(left.isEmpty, "cluster/testbed down left \(left)", sourceLocation: sourceLocation)
            withExtendedLifetime(lock) {}
        }
        try up(options, sourceLocation: sourceLocation)
        return try body()
    }

    /// Whether the built `conclave`'s `command --help` lists `option` (for tests of options
    /// that another change is adding).
    public static func conclaveAccepts(_ option: String, command: String = "logits") -> Bool {
        let path = Conclave.productsDirectory.appendingPathComponent("conclave").path
        guard FileManager.default.isExecutableFile(atPath: path),
              let job = try? MPIJob(executable: path, arguments: [command, "--help"], environment: Conclave.childEnvironment)
        else { return false }
        let result = job.finish(timeout: 30, grace: 1)
        return (result.stdout + result.stderr).contains(option)
    }

    /// A temporary directory for a test's files (a model, a profile), removed by the caller.
    public static func temporaryDirectory(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("testbed-\(label)-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// `conclave init-model --preset preset --dtype dtype --out DIR/model`: a synthetic model.
    public static func makeModel(in directory: URL, preset: String = "tiny", dtype: String = "f32",
                                 sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
        let model = directory.appendingPathComponent("model")
        let result = try Conclave.local(["init-model", "--preset", preset, "--dtype", dtype, "--out", model.path], timeout: 60,
                                        sourceLocation: sourceLocation)
        try #require(result.succeeded, "init-model failed\n\(result.report)", sourceLocation: sourceLocation)
        return model
    }
}
