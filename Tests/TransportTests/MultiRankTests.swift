import Foundation
import Testing

/// Runs the `transport-probe` executable under a real `mpirun` with three ranks.
@Suite struct MultiRank {
    /// The build products directory: where the test binary lives, next to transport-probe.
    static var productsDirectory: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    @Test(.timeLimit(.minutes(2)))
    func threeRanksRunTheProbe() throws {
        let probe = Self.productsDirectory.appendingPathComponent("transport-probe")
        try #require(FileManager.default.isExecutableFile(atPath: probe.path),
                     "transport-probe not built next to the tests at \(probe.path)")
        let mpirun = try #require(Self.which("mpirun"), "mpirun not on PATH (apt-get install openmpi-bin)")

        let ranks = 3
        var arguments = ["--oversubscribe", "-np", "\(ranks)", "--mca", "btl", "self,vader"]
        if getuid() == 0 { arguments.insert("--allow-run-as-root", at: 0) }
        arguments.append(probe.path)

        // A singleton MPI start in this process (another suite) adds launcher variables; an
        // mpirun that inherits them exits 1 without a word.
        let launcherPrefixes = ["OMPI_", "PMIX_", "ORTE_", "OPAL_"]
        let environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !launcherPrefixes.contains { key.hasPrefix($0) }
        }

        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("transport-probe-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let stdoutURL = scratch.appendingPathComponent("stdout"), stderrURL = scratch.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirun)
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        try process.run()

        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        let timedOut = process.isRunning
        if timedOut {
            process.terminate()
            usleep(2_000_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()

        let output = (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? ""
        let errors = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
        let report = "mpirun \(arguments.joined(separator: " "))\nstdout:\n\(output)\nstderr:\n\(errors)"
        #expect(!timedOut, "mpirun did not finish within 60 s\n\(report)")
        #expect(process.terminationStatus == 0, "mpirun exited \(process.terminationStatus)\n\(report)")
        let lines = Set(output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        for rank in 0..<ranks {
            #expect(lines.contains("ok rank \(rank) of \(ranks)"), "rank \(rank) did not report ok\n\(report)")
        }
    }
}
