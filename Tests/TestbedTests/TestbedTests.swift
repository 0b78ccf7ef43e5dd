import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cluster/testbed`: hosts as network namespaces on this machine, each with its own address,
/// hostname, model directory (a mount namespace), memory cgroup and rate-limited link, and
/// conclave started across them by `mpirun` over TCP with a namespace-entering agent instead
/// of ssh. Each test brings a test bed up and takes it down (`Testbed.session`), checks that
/// nothing of it is left, and runs one at a time.
@Suite(.serialized,
       .enabled(if: Testbed.isRoot, "the test bed needs root (network namespaces, tc, memory cgroups)"),
       .enabled(if: Testbed.isSupported, "the test bed needs `ip netns`, tc, unshare, mpirun and a writable cgroup v1 memory controller"))
struct TestbedRuns {
    /// Three hosts: host 0 runs the router and the attention rank (2 slots), hosts 1 and 2
    /// one expert rank each.
    static let threeHosts = ["--hosts", "3", "--slots", "2,1,1"]
    static let mountPath = "/srv/conclave/model"
    static var tiny4Layout: String { Conclave.packageRoot.appendingPathComponent("configs/layouts/tiny-4.json").path }

    // MARK: output parsing

    struct Logits {
        let logits: [[Double]]
        let routing: [[Int]]
    }

    static func parseLogits(_ result: MPIJob.Result, sourceLocation: SourceLocation = #_sourceLocation) throws -> Logits {
        try #require(result.stdoutLines.count == 1, "expected one JSON line on stdout\n\(result.report)", sourceLocation: sourceLocation)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutLines[0].utf8)) as? [String: Any],
                                  "stdout is not a JSON object\n\(result.report)", sourceLocation: sourceLocation)
        let routing = (object["routing"] as? [String: Any])?["experts"] as? [[Int]] ?? []
        return Logits(logits: try #require(object["logits"] as? [[Double]], sourceLocation: sourceLocation), routing: routing)
    }

    /// The largest |a − b| over every position and token.
    static func largestDifference(_ a: [[Double]], _ b: [[Double]]) -> Double {
        zip(a, b).flatMap { zip($0, $1).map { abs($0 - $1) } }.max() ?? .infinity
    }

    static func profile(_ url: URL, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any],
                     "\(url.path) is not a JSON object", sourceLocation: sourceLocation)
    }

    /// A job through the test bed: it ended before its timeout, and `run` found no process of
    /// it left in any host afterwards.
    static func expectClean(_ result: MPIJob.Result, sourceLocation: SourceLocation = #_sourceLocation) {
        Conclave.expectClean(result, sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("leftover processes"), "processes were left in a host after the job\n\(result.report)",
                sourceLocation: sourceLocation)
    }

    // MARK: 1. three hosts over TCP equal one process

    /// Router and attention on host 0, one expert rank on each of hosts 1 and 2, each host with
    /// its own copy of the model at the same path: `logits` and `generate --json` over TCP equal
    /// one process's; each host sees only its own model directory.
    @Test(.timeLimit(.minutes(1)))
    func threeHostsOverTCPMatchOneProcess() throws {
        let directory = try Testbed.temporaryDirectory("parity")
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Testbed.makeModel(in: directory)
        let profile = directory.appendingPathComponent("profile.json")
        let tokens = "0,5,6,17,42,99,3,250"
        let logits = ["logits", "--tokens", tokens, "--routing-layer", "1"]
        let generate = ["generate", "--tokens", tokens, "--max-tokens", "8", "--json"]

        let single = try Conclave.local(logits + ["--model", model.path])
        try #require(single.succeeded, "single-process logits failed\n\(single.report)")
        let singleGeneration = try Conclave.local(generate + ["--model", model.path])
        try #require(singleGeneration.succeeded, "single-process generate failed\n\(singleGeneration.report)")

        try Testbed.session(Self.threeHosts + ["--model-copy", model.path, "--link-rate", "10gbit"]) {
            // Each host sees its own directory at the common path, and only that.
            for host in ["h1", "h2"] {
                let touch = try Testbed.exec(host, ["touch", "\(Self.mountPath)/marker-\(host)"])
                try #require(touch.succeeded, "\(touch.report)")
            }
            var listings: [String: [String]] = [:]
            for host in ["h0", "h1", "h2"] {
                let ls = try Testbed.exec(host, ["ls", "-A", Self.mountPath])
                try #require(ls.succeeded, "\(ls.report)")
                listings[host] = ls.stdoutLines
                #expect(ls.stdoutLines.contains("model.safetensors") && ls.stdoutLines.contains("config.json"),
                        "\(host) does not see its model at \(Self.mountPath): \(ls.stdoutLines)")
            }
            print("testbed: \(Self.mountPath) per host: \(listings.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" })")
            #expect(listings["h1"]?.contains("marker-h1") == true && listings["h1"]?.contains("marker-h2") == false)
            #expect(listings["h2"]?.contains("marker-h2") == true && listings["h2"]?.contains("marker-h1") == false)
            #expect(listings["h0"]?.contains { $0.hasPrefix("marker-") } == false)
            // The other places a model lives are covered inside a host: the copy's source and
            // the test bed's per-host directories.
            let elsewhere = try Testbed.exec("h1", ["ls", "-A", model.path, "\(Testbed.stateDirectory)/hosts"])
            #expect(elsewhere.succeeded && elsewhere.stdoutLines.allSatisfy { $0.hasSuffix(":") },
                    "host 1 sees files outside its own model directory\n\(elsewhere.report)")
            // Outside the hosts the common path is an empty directory: the markers are in the hosts' own copies.
            #expect((try? FileManager.default.contentsOfDirectory(atPath: Self.mountPath)) == [])
            #expect(FileManager.default.fileExists(atPath: "\(Testbed.stateDirectory)/hosts/h1/model/marker-h1"))

            let cluster = try Testbed.run(logits + ["--model", Self.mountPath, "--layout", Self.tiny4Layout, "--profile-out", profile.path])
            Self.expectClean(cluster)
            try #require(cluster.succeeded, "three-host logits failed\n\(cluster.report)")
            let one = try Self.parseLogits(single), many = try Self.parseLogits(cluster)
            try #require(one.logits.count == 8 && many.logits.count == 8, "positions: single \(one.logits.count), cluster \(many.logits.count)")
            let worst = Self.largestDifference(one.logits, many.logits)
            print("testbed: three hosts vs one process: max |Δlogit| = \(worst)")
            #expect(worst == 0, "max |cluster − single| = \(worst): the cluster must give one process's bits")
            #expect(!one.routing.isEmpty && many.routing == one.routing, "routing: cluster \(many.routing), single \(one.routing)")

            // The ranks ran where the layout and the slots put them.
            let ranks = try #require(try Self.profile(profile)["ranks"] as? [[String: Any]])
            let placement = ranks.compactMap { row -> String? in
                guard let rank = row["rank"] as? Int, let host = row["host"] as? String, let role = row["role"] as? String else { return nil }
                return "\(rank) \(role) \(host)"
            }.sorted()
            #expect(placement == ["0 router cvtb-h0", "1 attention cvtb-h0", "2 expert cvtb-h1", "3 expert cvtb-h2"],
                    "placement \(placement)")

            let generation = try Testbed.run(generate + ["--model", Self.mountPath, "--layout", Self.tiny4Layout])
            Self.expectClean(generation)
            try #require(generation.succeeded, "three-host generate failed\n\(generation.report)")
            #expect(generation.stdoutLines == singleGeneration.stdoutLines,
                    "generate --json: cluster \(generation.stdoutLines), single \(singleGeneration.stdoutLines)")
        }
    }

    /// The same three hosts, each holding only its shard (`conclave shard` for the test bed's
    /// hostnames): the router and attention host has no routed expert, each expert host only
    /// its experts, every rank checks its manifest, and `logits` and `generate` equal one
    /// process on the whole model.
    @Test(.timeLimit(.minutes(1)))
    func threeHostsServeFromTheirShards() throws {
        let directory = try Testbed.temporaryDirectory("shards")
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Testbed.makeModel(in: directory)
        let hostfile = directory.appendingPathComponent("hosts")
        try "cvtb-h0 slots=2\ncvtb-h1 slots=1\ncvtb-h2 slots=1\n".write(to: hostfile, atomically: true, encoding: .utf8)
        let shards = directory.appendingPathComponent("shards")
        let shard = try Conclave.local(["shard", "--model", model.path, "--hostfile", hostfile.path, "--layout", Self.tiny4Layout,
                                        "--out", shards.path])
        try #require(shard.succeeded, "\(shard.report)")
        let logits = ["logits", "--tokens", "0,5,6,17,42,99,3,250"]
        let single = try Conclave.local(logits + ["--model", model.path])
        try #require(single.succeeded, "\(single.report)")

        let dirs = (0..<3).flatMap { ["--model-dir", "h\($0)=\(shards.appendingPathComponent("cvtb-h\($0)").path)"] }
        try Testbed.session(Self.threeHosts + dirs) {
            // What each host can read at the common path: its own manifest's tensors.
            for (host, held, absent) in [("h0", [String](), ["mlp.experts."]), ("h1", ["mlp.experts.0."], ["mlp.experts.8."]),
                                         ("h2", ["mlp.experts.8."], ["mlp.experts.0."])] {
                let manifest = try Testbed.exec(host, ["cat", "\(Self.mountPath)/conclave-shard.json"])
                try #require(manifest.succeeded, "\(manifest.report)")
                for name in held { #expect(manifest.stdout.contains(name), "\(host)'s shard lacks \(name)") }
                for name in absent { #expect(!manifest.stdout.contains(name), "\(host)'s shard holds \(name)") }
            }
            let cluster = try Testbed.run(logits + ["--model", Self.mountPath, "--layout", Self.tiny4Layout])
            Self.expectClean(cluster)
            try #require(cluster.succeeded, "three hosts from their shards\n\(cluster.report)")
            let worst = Self.largestDifference(try Self.parseLogits(single).logits, try Self.parseLogits(cluster).logits)
            print("testbed: three hosts from their shards vs one process on the whole model: max |Δlogit| = \(worst)")
            #expect(worst == 0, "max |shards − whole| = \(worst): the cluster must give one process's bits")

            let generate = ["generate", "--tokens", "0,5,6,17", "--max-tokens", "8", "--json"]
            let alone = try Conclave.local(generate + ["--model", model.path])
            let spread = try Testbed.run(generate + ["--model", Self.mountPath, "--layout", Self.tiny4Layout])
            Self.expectClean(spread)
            #expect(alone.succeeded && spread.succeeded && spread.stdoutLines == alone.stdoutLines,
                    "generate from shards \(spread.stdoutLines), whole model \(alone.stdoutLines)\n\(spread.report)")
        }
    }

    // MARK: 2. a host dies mid-run

    /// SIGKILL every process of host 2 (its daemon and its expert rank) while a long generation
    /// runs: the job ends non-zero within 30 s, no process is left in any host, and `down`
    /// leaves no namespace, link or cgroup.
    @Test(.timeLimit(.minutes(1)))
    func killedHostEndsTheJob() throws {
        let directory = try Testbed.temporaryDirectory("kill")
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Testbed.makeModel(in: directory, dtype: "bf16")

        try Testbed.session(Self.threeHosts + ["--model-copy", model.path]) {
            // --json: nothing reaches stdout before the generation ends.
            let job = try Testbed.start(["run", "--timeout", "90", "--", "generate", "--model", Self.mountPath, "--tokens", "0,5,6",
                                         "--max-tokens", "100000", "--ignore-eos", "--json"])
            guard job.wait(upTo: 30, until: { job.stderrText.contains("expert") && job.stderrText.contains("cvtb-h2") }) else {
                Issue.record("the job did not start within 30 s\n\(job.finish(timeout: 0).report)")
                return
            }
            usleep(500_000)
            guard job.isRunning, job.stdoutText.isEmpty else {
                Issue.record("the generation ended before host 2 could be killed\n\(job.finish(timeout: 0).report)")
                return
            }
            let victims = try Testbed.processes(host: "h2")
            #expect(victims.contains { $0.hasSuffix(" conclave") }, "no conclave rank in host 2: \(victims)")
            for line in victims {
                let fields = line.split(separator: " ")
                if fields.count >= 2, let pid = pid_t(fields[1]) { kill(pid, SIGKILL) }
            }
            let killedAt = job.elapsed

            let result = job.finish(timeout: killedAt + 30)
            Self.expectClean(result)
            let after = result.seconds - killedAt
            print("testbed: killed host 2 (\(victims.joined(separator: ", "))); the job ended \(String(format: "%.2f", after)) s later with \(result.termination)")
            #expect(result.termination != .exited(0), "the job succeeded without host 2\n\(result.report)")
            #expect(after < 30, "the job took \(after) s to end after host 2 died\n\(result.report)")
            #expect(!result.stdout.contains("finish_reason"), "a result was printed despite the dead host\n\(result.report)")
            let left = try Testbed.processes()
            #expect(left.isEmpty, "processes left in the hosts: \(left)")
        }
    }

    // MARK: 3. slow links slow the all-to-all

    /// Dispatch and combine take longer over 20 Mbit/s links than over 10 Gbit/s ones (the
    /// direction only; the figures and bytes ÷ rate are printed).
    @Test(.timeLimit(.minutes(1)))
    func slowLinksSlowDispatchAndCombine() throws {
        let directory = try Testbed.temporaryDirectory("rate")
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Testbed.makeModel(in: directory, dtype: "bf16")
        // 64 prompt tokens in one prefill step: ~115 KiB each way per MoE layer.
        let tokens = (0..<64).map { String(($0 * 37) % 1000 + 2) }.joined(separator: ",")

        try Testbed.session(Self.threeHosts + ["--model-copy", model.path]) {
            var totals: [String: Double] = [:]
            for rate in ["10gbit", "20mbit"] {
                let set = try Testbed.command(["link-rate", rate])
                try #require(set.succeeded, "\(set.report)")
                let profile = directory.appendingPathComponent("profile-\(rate).json")
                let started = Date()
                let result = try Testbed.run(["logits", "--model", Self.mountPath, "--tokens", tokens, "--profile-out", profile.path])
                Self.expectClean(result)
                try #require(result.succeeded, "logits at \(rate) failed\n\(result.report)")
                let layers = try #require(try Self.profile(profile)["layers"] as? [[String: Any]])
                try #require(!layers.isEmpty, "no MoE layers in the profile")
                let bitsPerSecond = rate == "20mbit" ? 20e6 : 10e9
                var total = 0.0
                var lines: [String] = []
                for layer in layers {
                    let dispatch = try #require((layer["dispatch"] as? [String: Any])?["mean_us"] as? Double)
                    let combine = try #require((layer["combine"] as? [String: Any])?["mean_us"] as? Double)
                    let dispatchBytes = layer["dispatch_bytes_per_step"] as? Int ?? 0, combineBytes = layer["combine_bytes_per_step"] as? Int ?? 0
                    // Every byte crosses host 0's link (the router's), one way each.
                    let predicted = { (bytes: Int) in Double(bytes) * 8 / bitsPerSecond * 1e6 }
                    lines.append(String(format: "layer %d: dispatch %.0f µs (%d B, bytes÷rate %.0f µs), combine %.0f µs (%d B, bytes÷rate %.0f µs)",
                                        layer["layer"] as? Int ?? -1, dispatch, dispatchBytes, predicted(dispatchBytes),
                                        combine, combineBytes, predicted(combineBytes)))
                    total += dispatch + combine
                }
                totals[rate] = total
                print("testbed: links at \(rate), job \(String(format: "%.1f", Date().timeIntervalSince(started))) s:\n  " + lines.joined(separator: "\n  "))
            }
            let fast = try #require(totals["10gbit"]), slow = try #require(totals["20mbit"])
            print(String(format: "testbed: dispatch+combine over all MoE layers: %.0f µs at 10gbit, %.0f µs at 20mbit (×%.1f)", fast, slow, slow / fast))
            #expect(slow > fast, "dispatch+combine at 20mbit (\(slow) µs) is not slower than at 10gbit (\(fast) µs)")
        }
    }

    // MARK: 4. too large for one node

    /// With the same memory limit on every host, the whole job on one host is killed by the
    /// kernel (OOM) while the job split over three hosts runs and gives the same logits; the
    /// peaks per host come from each host's cgroup.
    @Test(.timeLimit(.minutes(1)))
    func jobTooLargeForOneHostFitsOnThree() throws {
        let directory = try Testbed.temporaryDirectory("memory")
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Testbed.makeModel(in: directory)
        let logits = ["logits", "--model", Self.mountPath, "--tokens", "0,5,6,17,42,99,3,250", "--routing-layer", "1"]
        let reference = try Conclave.local(["logits", "--model", model.path, "--tokens", "0,5,6,17,42,99,3,250", "--routing-layer", "1"])
        try #require(reference.succeeded, "\(reference.report)")
        func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

        // The limit, measured on this machine (debug build, tiny f32, one compute thread per rank):
        // the whole job on one host needs ~37 MiB that the kernel cannot reclaim (4 ranks and the
        // daemon), the busiest split host (router + attention) ~22 MiB; the weights are mapped
        // files, which the kernel reclaims rather than refuses (see the test's notes).
        let limit = 30 << 20

        try Testbed.session(Self.threeHosts + ["--model-copy", model.path]) {
            // Unlimited first: what each placement takes.
            var unlimited: [String: Int] = [:]
            for (name, slots) in [("one host", "4,0,0"), ("three hosts", "2,1,1")] {
                let result = try Testbed.run(logits, options: ["--slots", slots])
                Self.expectClean(result)
                try #require(result.succeeded, "\(name), no limit\n\(result.report)")
                let memory = try Testbed.memory()
                print("testbed: \(name), no limit: " + memory.values.sorted { $0.host < $1.host }.filter { $0.peak > 1 << 20 }.map(\.description).joined(separator: "; "))
                unlimited[name] = memory.values.map(\.peak).max() ?? 0
            }
            #expect((unlimited["one host"] ?? 0) > (unlimited["three hosts"] ?? .max),
                    "the busiest host of the split job peaked at \(mib(unlimited["three hosts"] ?? 0)), the one-host job at \(mib(unlimited["one host"] ?? 0))")

            let set = try Testbed.command(["memory-limit", "\(limit)"])
            try #require(set.succeeded, "\(set.report)")
            let oomBefore = try Testbed.memory()["cvtb-h0"]?.oomKills ?? 0

            // The whole job on host 0: a rank is killed by the kernel, the job ends non-zero.
            let whole = try Testbed.run(logits, options: ["--slots", "4,0,0"])
            Self.expectClean(whole)
            let afterWhole = try Testbed.memory()
            let h0 = try #require(afterWhole["cvtb-h0"])
            print("testbed: one host, limit \(mib(limit)): \(whole.termination); \(h0)")
            #expect(whole.termination != .exited(0), "the whole job ran on one host within \(mib(limit))\n\(whole.report)")
            #expect(whole.stderrLines.contains { $0.contains("signal 9") }, "mpirun does not report a rank killed by signal 9\n\(whole.report)")
            if let kills = h0.oomKills {
                #expect(kills > oomBefore, "host 0's cgroup counted no OOM kill (before \(oomBefore), after \(kills))")
            }
            // The kernel charges memory in per-CPU batches and may pass memory.max by a few pages
            // before the OOM kill lands (seen: 4 KiB).
            #expect(h0.peak <= limit + (256 << 10), "\(h0)")

            // Split over three hosts under the same limit: it runs, and gives one process's logits.
            let split = try Testbed.run(logits, options: ["--slots", "2,1,1"])
            Self.expectClean(split)
            let afterSplit = try Testbed.memory()
            print("testbed: three hosts, limit \(mib(limit)) each: \(split.termination); "
                  + afterSplit.values.sorted { $0.host < $1.host }.map(\.description).joined(separator: "; "))
            try #require(split.succeeded, "the split job failed under \(mib(limit)) per host\n\(split.report)")
            for host in afterSplit.values {
                #expect(host.peak <= limit && host.peak > 0, "\(host)")
                #expect(host.oomKills == afterWhole[host.host]?.oomKills, "\(host.host) had an OOM kill in the split job")
            }
            let worst = Self.largestDifference(try Self.parseLogits(reference).logits, try Self.parseLogits(split).logits)
            #expect(worst == 0, "max |split − single| = \(worst): the cluster must give one process's bits")
        }
    }

    /// With `--mlock` (weights locked in RAM, so the cgroup cannot reclaim them) and the same
    /// limit on every expert host, the routed experts of the whole model do not fit one host
    /// while a third of them fit each of three; without `--mlock` the whole shard "fits" only
    /// because the kernel pages the mapped weights in and out.
    @Test(.timeLimit(.minutes(1)), .enabled(if: Testbed.conclaveAccepts("--mlock"), "conclave has no --mlock yet"))
    func expertsTooLargeForOneHostFitOnThreeWhenLocked() throws {
        let directory = try Testbed.temporaryDirectory("mlock")
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Testbed.makeModel(in: directory)
        let tokens = "0,5,6,17,42,99,3,250"
        let reference = try Conclave.local(["logits", "--model", model.path, "--tokens", tokens])
        try #require(reference.succeeded, "\(reference.report)")
        let logits = ["logits", "--model", Self.mountPath, "--tokens", tokens]
        func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
        // Measured here (debug build, tiny f32: 18 MiB of routed experts): an expert host needs
        // ~10 MiB besides its locked experts; all 16 experts locked need 28-30 MiB, 6 of them 18-20,
        // and locking under a tight limit sometimes meets the OOM killer before reclaim: 26 MiB.
        let limit = 26 << 20

        // Host 0: router and attention, no limit; hosts 1-3: expert ranks, limited.
        try Testbed.session(["--hosts", "4", "--slots", "2,1,1,1", "--model-copy", model.path,
                             "--memory-limit", "h1=\(limit)", "--memory-limit", "h2=\(limit)", "--memory-limit", "h3=\(limit)"]) {
            // -np 5: three expert ranks, one per host (experts 0-5, 6-10, 11-15). First, while the
            // hosts' cgroups hold nothing of an earlier job (page cache charged there stays charged).
            let split = try Testbed.run(logits + ["--mlock"], options: ["--slots", "2,1,1,1"])
            Self.expectClean(split)
            let memory = try Testbed.memory()
            print("testbed: experts on hosts 1-3 with --mlock, limit \(mib(limit)) each: \(split.termination); "
                  + memory.values.sorted { $0.host < $1.host }.map(\.description).joined(separator: "; "))
            try #require(split.succeeded, "a third of the experts per host did not fit \(mib(limit)) with --mlock\n\(split.report)")
            let worst = Self.largestDifference(try Self.parseLogits(reference).logits, try Self.parseLogits(split).logits)
            #expect(worst == 0, "max |split − single| = \(worst): the cluster must give one process's bits")

            let before = try Testbed.memory()["cvtb-h1"]?.oomKills ?? 0
            // -np 3: one expert rank, on host 1, holds all 16 experts.
            let whole = try Testbed.run(logits + ["--mlock"], options: ["--slots", "2,1,0,0"])
            Self.expectClean(whole)
            let h1 = try #require(try Testbed.memory()["cvtb-h1"])
            let refusal = whole.stderrLines.first { $0.contains("cannot lock") }
            print("testbed: all experts on host 1 with --mlock, limit \(mib(limit)): \(whole.termination); \(h1); "
                  + (refusal.map { "refused: \($0)" } ?? "not refused by conclave: killed by the kernel"))
            #expect(whole.termination != .exited(0), "all 16 experts were locked on host 1 within \(mib(limit))\n\(whole.report)")
            if refusal == nil {
                #expect((h1.oomKills ?? 0) > before, "the job failed, but neither a refusal nor an OOM kill in host 1\n\(whole.report)")
            } else {
                #expect(refusal?.contains("cvtb-h1") == true, "the refusal does not name host 1: \(refusal ?? "")")
            }

            // Without --mlock the same placement as the refused run completes: the kernel reclaims
            // mapped weights instead of refusing them, so only locking shows the shortfall.
            let paged = try Testbed.run(logits, options: ["--slots", "2,1,0,0"])
            Self.expectClean(paged)
            print("testbed: all experts on host 1 without --mlock, limit \(mib(limit)): \(paged.termination)")
            #expect(paged.succeeded, "\(paged.report)")
        }
    }

    // MARK: 5. teardown on interruption and after a crash

    /// `run --ephemeral` interrupted (SIGINT, as Ctrl-C) mid-job removes everything; an `up`
    /// after a crashed session (its launcher SIGKILLed, a process left inside a host) starts
    /// clean; `run --timeout` kills a job that outlives it.
    @Test(.timeLimit(.minutes(1)))
    func interruptedAndCrashedTestBedsAreCleanedUp() throws {
        let directory = try Testbed.temporaryDirectory("crash")
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Testbed.makeModel(in: directory, dtype: "bf16")
        let lock = try Testbed.Lock()
        defer {
            let left = Testbed.down()
            #expect(left.isEmpty, "down left \(left)")
            withExtendedLifetime(lock) {}
        }

        let job = try Testbed.start(["run", "--ephemeral"] + Self.threeHosts + ["--model-copy", model.path, "--timeout", "90", "--",
                                     "generate", "--model", Self.mountPath, "--tokens", "0,5,6", "--max-tokens", "100000", "--ignore-eos", "--json"])
        guard job.wait(upTo: 30, until: { job.stderrText.contains("cvtb-h2") && job.stderrText.contains("expert") }) else {
            Issue.record("the job did not start within 30 s\n\(job.finish(timeout: 0).report)")
            return
        }
        #expect(job.send(SIGINT))
        let interrupted = job.finish(timeout: job.elapsed + 20)
        Conclave.expectClean(interrupted)
        #expect(interrupted.termination == .exited(130), "\(interrupted.report)")
        #expect(Testbed.leftovers().isEmpty, "an interrupted run --ephemeral left \(Testbed.leftovers())")

        // A crash: a command running inside host 1 whose launcher dies without cleaning up.
        try Testbed.up(["--hosts", "2"])
        let orphanMaker = try Testbed.start(["exec", "h1", "--timeout", "120", "--", "sleep", "300"])
        var orphan: pid_t?
        _ = orphanMaker.wait(upTo: 10) {
            orphan = (try? Testbed.processes(host: "h1"))?.first { $0.hasSuffix(" sleep") }.flatMap { pid_t($0.split(separator: " ")[1]) }
            return orphan != nil
        }
        let sleeper = try #require(orphan, "the command did not start in host 1")
        // Only the launcher dies (finish would kill its whole session, the command in host 1 included).
        kill(orphanMaker.pid, SIGKILL)
        _ = orphanMaker.wait(upTo: 5) { false }
        func alive(_ pid: pid_t) -> Bool { MPIJob.entry(pid).map { $0.state != "Z" && $0.state != "X" } ?? false }
        #expect(!orphanMaker.isRunning && alive(sleeper), "the command in host 1 should outlive its launcher")

        try Testbed.up(Self.threeHosts + ["--model-copy", model.path])
        #expect(!alive(sleeper), "up left the previous test bed's process \(sleeper) running")
        #expect(try Testbed.processes().isEmpty)
        let status = try Testbed.command(["status"])
        #expect(status.succeeded && status.stdoutLines.filter { $0.hasPrefix("cvtb-h") && $0.contains("slots=") }.count == 3, "\(status.report)")

        // run --timeout: a job that outlives it is killed, with timeout(1)'s status, and nothing stays.
        let timedOut = try Testbed.run(["generate", "--model", Self.mountPath, "--tokens", "0,5,6", "--max-tokens", "100000",
                                        "--ignore-eos", "--json"], timeout: 4)
        Self.expectClean(timedOut)
        #expect(timedOut.termination == .exited(124) && timedOut.stderr.contains("timed out after 4 s"), "\(timedOut.report)")
        #expect(try Testbed.processes().isEmpty)
    }
}
