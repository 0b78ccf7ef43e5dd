import Checkpoint
import Cluster
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `conclave shard` and clusters started from its per-node directories: what each node's
/// directory holds, parity with the whole model, and the start-up refusals (another node's
/// directory, a damaged file, weights that do not fit in locked memory). Jobs run one at a time.
@Suite(.serialized) struct ShardedCluster {
    /// One router + attention node and two expert nodes: -np 4, default layout
    /// (router 0, attention 1, experts 2: 0-7, 3: 8-15).
    static let hostfile = """
        # node-a: router and attention; node-b, node-c: one expert rank each
        node-a slots=2
        node-b slots=1

        node-c slots=1   # the last expert rank
        """
    static let nodes = [(name: "node-a", ranks: 2), (name: "node-b", ranks: 1), (name: "node-c", ranks: 1)]

    enum Source: CustomTestStringConvertible, Sendable {
        /// `conclave init-model --preset tiny`: bf16, one model.safetensors.
        case tiny
        /// A transformers fixture (FP8 with scales, for `v3-fp8`).
        case fixture(String)
        var testDescription: String {
            switch self {
            case .tiny: "tiny preset"
            case .fixture(let name): "fixture \(name)"
            }
        }
    }

    /// A source model and its shards in a temporary directory (`remove()` deletes it).
    struct Shards {
        let root: URL
        let model: URL
        let out: URL
        let result: MPIJob.Result
        func node(_ name: String) -> URL { out.appendingPathComponent(name) }
        func remove() { try? FileManager.default.removeItem(at: root) }
    }

    static func shard(_ source: Source, options: [String] = []) throws -> Shards {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-shard-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let model: URL
        switch source {
        case .tiny:
            model = root.appendingPathComponent("tiny")
            let made = try Conclave.local(["init-model", "--preset", "tiny", "--out", model.path])
            try #require(made.succeeded, "init-model failed\n\(made.report)")
        case .fixture(let name):
            model = Conclave.fixture(name)
        }
        let hosts = root.appendingPathComponent("hosts")
        try Data(hostfile.utf8).write(to: hosts)
        let out = root.appendingPathComponent("shards")
        let result = try Conclave.local(["shard", "--model", model.path, "--hostfile", hosts.path, "--out", out.path] + options)
        try #require(result.succeeded, "conclave shard failed\n\(result.report)")
        return Shards(root: root, model: model, out: out, result: result)
    }

    /// `mpirun` arguments running `command` with each node's directory as `--model`: node-a's
    /// two ranks, then node-b's and node-c's (ranks 2 and 3), as --map-by slot would place them.
    static func run(_ command: [String], models: [URL], options: [String] = [], timeout: Double = 45) throws -> MPIJob.Result {
        let binary = try Conclave.binary()
        var arguments = command + ["--model", models[0].path] + options
        for (node, model) in zip(nodes.dropFirst(), models.dropFirst()) {
            arguments += [":", "-np", "\(node.ranks)", binary] + command + ["--model", model.path] + options
        }
        return try Conclave.mpi(ranks: nodes[0].ranks, arguments, timeout: timeout)
    }

    static func manifest(_ directory: URL) throws -> ShardManifest {
        try JSONDecoder().decode(ShardManifest.self, from: Data(contentsOf: directory.appendingPathComponent(ShardManifest.fileName)))
    }

    /// `sha256sum FILE`: a digest computed apart from conclave's.
    static func sha256sum(_ url: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sha256sum", url.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    static func flipByte(in url: URL, atOffsetFromEnd offset: Int) throws {
        let handle = try FileHandle(forUpdating: url)
        defer { try? handle.close() }
        let end = try handle.seekToEnd()
        try handle.seek(toOffset: end - UInt64(offset))
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: end - UInt64(offset))
        try handle.write(contentsOf: [byte ^ 0x01])
    }

    // MARK: what each node's directory holds

    struct ShardCase: CustomTestStringConvertible, Sendable {
        let source: Source
        let options: [String]
        var testDescription: String { source.testDescription + (options.isEmpty ? "" : " " + options.joined(separator: " ")) }
    }

    static let cases = [
        ShardCase(source: .tiny, options: []),
        // FP8 with its scales, and files small enough to split into several plus an index.
        ShardCase(source: .fixture("v3-fp8"), options: ["--max-file-bytes", "65536"]),
    ]

    /// Every node gets a loadable model directory holding exactly its ranks' tensors, byte for
    /// byte as stored, with config and tokenizer; node-a no routed expert; the expert nodes their
    /// own experts in every MoE layer; manifests whose sizes and SHA-256 match the files.
    @Test(.timeLimit(.minutes(1)), arguments: cases)
    func eachNodeHoldsOnlyItsRanksTensors(_ c: ShardCase) throws {
        let shards = try Self.shard(c.source, options: c.options)
        defer { shards.remove() }
        let source = try Checkpoint(directory: shards.model)
        let config = source.config
        let moeLayers = (0..<config.numHiddenLayers).filter(config.isMoELayer)
        let routedExperts = Set(source.tensorNames.filter { $0.contains(".mlp.experts.") })
        try #require(!moeLayers.isEmpty && !routedExperts.isEmpty)
        #expect(shards.result.stderr.contains("host    ranks  serves"), "no summary table\n\(shards.result.report)")

        func expertNames(_ ids: Range<Int>) -> Set<String> {
            routedExperts.filter { name in
                ids.contains { id in moeLayers.contains { name.hasPrefix("model.layers.\($0).mlp.experts.\(id).") } }
            }
        }
        let expected: [String: Set<String>] = [
            "node-a": Set(source.tensorNames).subtracting(routedExperts),
            "node-b": expertNames(0..<8),
            "node-c": expertNames(8..<16),
        ]
        for (node, ranks) in [("node-a", [0, 1]), ("node-b", [2]), ("node-c", [3])] {
            let directory = shards.node(node)
            let shard = try Checkpoint(directory: directory)
            #expect(shard.config == config)
            #expect(Set(shard.tensorNames) == expected[node]!, "\(node) holds \(Set(shard.tensorNames).symmetricDifference(expected[node]!).sorted().prefix(5)) unexpectedly or not")
            for name in shard.tensorNames {
                let (copy, copied) = try shard.storedBytes(of: name)
                let (original, bytes) = try source.storedBytes(of: name)
                #expect(copy.dtype == original.dtype && copy.shape == original.shape && Array(copied) == Array(bytes), "\(node): \(name) differs")
            }
            if node == "node-a" {
                #expect(!shard.tensorNames.contains { $0.contains(".mlp.experts.") }, "node-a holds routed-expert bytes")
            }
            if case .fixture = c.source {
                #expect(shard.tensorNames.contains { $0.hasSuffix("_scale_inv") }, "\(node): FP8 scales were not kept")
                #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(Checkpoint.indexFile).path))
            }
            for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
                #expect(FileManager.default.contentsEqual(atPath: directory.appendingPathComponent(file).path,
                                                          andPath: shards.model.appendingPathComponent(file).path), "\(node): \(file) differs")
            }

            let manifest = try Self.manifest(directory)
            #expect(manifest.host == node && manifest.worldSize == 4)
            #expect(manifest.ranks.map(\.rank) == ranks)
            #expect(manifest.ranks.map(\.role) == (node == "node-a" ? [.router, .attention] : [.expert]))
            #expect(manifest.sourceModel == shards.model.path)
            let onDisk = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0 != ShardManifest.fileName }
            #expect(Set(manifest.files.map(\.name)) == Set(onDisk))
            #expect(Set(manifest.tensorNames) == expected[node]!)
            for file in manifest.files {
                let url = directory.appendingPathComponent(file.name)
                #expect(file.bytes == (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int))
                #expect(file.sha256 == (try Self.sha256sum(url)), "\(node)/\(file.name): checksum")
                #expect((file.tensors != nil) == file.name.hasSuffix(".safetensors"))
            }
        }
        // All three nodes answer for the same source model.
        let fingerprints = try Set(Self.nodes.map { try Self.manifest(shards.node($0.name)).sourceFingerprint })
        #expect(fingerprints.count == 1)
    }

    // MARK: a cluster from the shards

    /// An MPMD job giving each rank its node's directory computes the logits (and routing) of
    /// one process over the whole model; the start-up table gives the node's bytes on disk.
    @Test(.timeLimit(.minutes(2)), arguments: cases)
    func clusterFromShardsMatchesTheWholeModel(_ c: ShardCase) throws {
        let shards = try Self.shard(c.source, options: c.options)
        defer { shards.remove() }
        let command = ["logits", "--tokens", "0,5,6,7,1,3", "--routing-layer", "1"]
        let single = try Conclave.local(command + ["--model", shards.model.path])
        try #require(single.succeeded, "single-process run failed\n\(single.report)")
        let cluster = try Self.run(command, models: Self.nodes.map { shards.node($0.name) })
        try #require(cluster.succeeded, "cluster run from the shards failed\n\(cluster.report)")

        let one = try ClusterRun.parseLogits(single), many = try ClusterRun.parseLogits(cluster)
        try #require(one.logits.count == 6 && many.logits.count == 6)
        for (position, (a, b)) in zip(one.logits, many.logits).enumerated() {
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
            #expect(a.count == b.count && worst <= 1e-5, "position \(position): max |shards − whole model| = \(worst)")
        }
        #expect(many.routing == one.routing)

        // One host runs every rank here: its on-disk bytes are the three directories' weights.
        let weights = try Self.nodes.reduce(0) { total, node in
            try total + Checkpoint(directory: shards.node(node.name)).weightFileBytes()
        }
        let header = try #require(cluster.stderrLines.firstIndex { $0.hasPrefix("host ") && $0.hasSuffix("on disk") },
                                  "no node rows in the start-up table\n\(cluster.report)")
        let row = cluster.stderrLines[header + 1]
        #expect(row.hasSuffix(ClusterLayout.bytes(weights)), "node row \(row), expected \(ClusterLayout.bytes(weights)) on disk")
    }

    /// A layout placing each MoE layer its own way (with replicas): each expert node's
    /// directory holds exactly its rank's experts of each layer, its manifest says so per layer,
    /// and the cluster from the shards computes one process's logits bit for bit.
    @Test(.timeLimit(.minutes(2)))
    func perLayerLayoutShardsHoldEachLayersExperts() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-shard-layers-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let layout = root.appendingPathComponent("layout.json")
        try Data(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "8-15"}, "layers": {"1": {"2": "0-9", "3": "6-15"}, "2": {"2": "8-15", "3": "0-7"}}}"#.utf8)
            .write(to: layout)
        let shards = try Self.shard(.fixture("v3-fp8"), options: ["--layout", layout.path])
        defer { shards.remove() }
        let source = try Checkpoint(directory: shards.model)
        func experts(_ placement: [Int: ClosedRange<Int>]) -> Set<String> {
            Set(source.tensorNames.filter { name in
                placement.contains { layer, ids in ids.contains { name.hasPrefix("model.layers.\(layer).mlp.experts.\($0).") } }
            })
        }
        for (node, rank, placement) in [("node-b", 2, [1: 0...9, 2: 8...15]), ("node-c", 3, [1: 6...15, 2: 0...7])] {
            let directory = shards.node(node)
            #expect(Set(try Checkpoint(directory: directory).tensorNames) == experts(placement), "\(node)")
            let manifest = try Self.manifest(directory)
            #expect(manifest.ranks.map(\.rank) == [rank])
            #expect(manifest.ranks.first?.layers == ["1": Array(placement[1]!), "2": Array(placement[2]!)])
            #expect(manifest.ranks.first?.experts == Array(0...15))
        }
        let command = ["logits", "--tokens", "0,5,6,7,1,3", "--routing-layer", "2"]
        let single = try Conclave.local(command + ["--model", shards.model.path])
        try #require(single.succeeded, "single-process run failed\n\(single.report)")
        let cluster = try Self.run(command, models: Self.nodes.map { shards.node($0.name) }, options: ["--layout", layout.path])
        try #require(cluster.succeeded, "cluster run from the shards failed\n\(cluster.report)")
        let one = try ClusterRun.parseLogits(single), many = try ClusterRun.parseLogits(cluster)
        #expect(one.logits == many.logits && one.routing == many.routing)
    }

    // MARK: refusals

    /// node-b and node-c given each other's directories: non-zero exit within 10 s, nothing on
    /// stdout, and one line per rank naming the rank, the node whose shard it got, and the file.
    @Test(.timeLimit(.minutes(1)))
    func swappedShardsAreRefused() throws {
        let shards = try Self.shard(.tiny)
        defer { shards.remove() }
        let result = try Self.run(["logits", "--tokens", "0,5,6"], models: [shards.node("node-a"), shards.node("node-c"), shards.node("node-b")],
                                  timeout: 30)
        #expect(result.termination != .exited(0), "expected a failure\n\(result.report)")
        #expect(result.seconds < 10, "took \(result.seconds) s\n\(result.report)")
        #expect(result.stdout.isEmpty, "stdout should be empty\n\(result.report)")
        for (rank, other) in [(2, "node-c"), (3, "node-b")] {
            let manifest = shards.node(other).appendingPathComponent(ShardManifest.fileName).path
            let lines = result.stderrLines.filter { $0.contains("rank \(rank) (expert): node \(other)'s shard") }
            #expect(lines.count == 1, "no single line for rank \(rank)\n\(result.report)")
            #expect(lines.first?.contains(manifest) == true, "the line does not name \(manifest)\n\(result.report)")
        }
    }

    /// A byte flipped in node-b's weights: refused by its checksum, naming node, rank and file.
    /// With --no-verify-checksums the same directory loads (the check is what caught it); a
    /// truncated file is refused even then, by its size.
    @Test(.timeLimit(.minutes(1)))
    func damagedShardIsRefused() throws {
        let shards = try Self.shard(.tiny)
        defer { shards.remove() }
        let damaged = shards.root.appendingPathComponent("node-b-copy")
        try FileManager.default.copyItem(at: shards.node("node-b"), to: damaged)
        let weights = damaged.appendingPathComponent(Checkpoint.singleFile)
        try Self.flipByte(in: weights, atOffsetFromEnd: 100)
        let models = [shards.node("node-a"), damaged, shards.node("node-c")]
        let command = ["logits", "--tokens", "0,5,6"]

        let refused = try Self.run(command, models: models, timeout: 30)
        #expect(refused.termination != .exited(0), "expected a failure\n\(refused.report)")
        #expect(refused.seconds < 10, "took \(refused.seconds) s\n\(refused.report)")
        let line = refused.stderrLines.filter { $0.contains("rank 2 (expert): node node-b's shard") }
        #expect(line.count == 1 && line[0].contains(weights.path) && line[0].contains("SHA-256"), "\(refused.report)")

        let unchecked = try Self.run(command, models: models, options: ["--no-verify-checksums"])
        #expect(unchecked.succeeded, "without checksums the directory should load\n\(unchecked.report)")

        let handle = try FileHandle(forUpdating: weights)
        let size = try handle.seekToEnd()
        try handle.truncate(atOffset: size - 1)
        try handle.close()
        let truncated = try Self.run(command, models: models, options: ["--no-verify-checksums"], timeout: 30)
        #expect(truncated.termination != .exited(0), "expected a failure\n\(truncated.report)")
        let sizeLine = truncated.stderrLines.filter { $0.contains("rank 2 (expert): node node-b's shard") }
        #expect(sizeLine.count == 1 && sizeLine[0].contains("\(weights.path) is \(size - 1) bytes, but the shard's manifest records \(size)"),
                "\(truncated.report)")
    }

    /// `conclave shard` refuses a hostfile whose slots are not the layout's ranks, and one without slots.
    @Test(.timeLimit(.minutes(1)))
    func hostfileThatDoesNotFitIsRefused() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-shard-hosts-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let hosts = root.appendingPathComponent("hosts")
        try Data(Self.hostfile.utf8).write(to: hosts)
        let layout = Conclave.packageRoot.appendingPathComponent("configs/layouts/fixture-5-uneven.json")
        let model = Conclave.fixture("v3-sigmoid-grouped").path
        let out = root.appendingPathComponent("out").path

        let mismatch = try Conclave.local(["shard", "--model", model, "--hostfile", hosts.path, "--layout", layout.path, "--out", out])
        #expect(mismatch.termination != .exited(0))
        #expect(mismatch.stderr.contains("hostfile \(hosts.path) has 4 slots, but layout \(layout.path) places 5 ranks"), "\(mismatch.report)")
        #expect(!FileManager.default.fileExists(atPath: out), "nothing should be written")

        try Data("node-a slots=2\nnode-b\n".utf8).write(to: hosts)
        let noSlots = try Conclave.local(["shard", "--model", model, "--hostfile", hosts.path, "--out", out])
        #expect(noSlots.termination != .exited(0))
        #expect(noSlots.stderr.contains("\(hosts.path):2: node node-b has no slots=N"), "\(noSlots.report)")
    }

    // MARK: start-up checks in process

    /// `ShardManifest.check` on node-b's directory: passes for rank 2, and names the problem
    /// for another rank, another job size, a tensor the manifest does not list, and a missing
    /// weight file.
    @Test(.timeLimit(.minutes(1)))
    func manifestCheckNamesEachProblem() throws {
        let shards = try Self.shard(.tiny)
        defer { shards.remove() }
        let directory = shards.node("node-b")
        let config = try ModelConfig(contentsOf: directory.appendingPathComponent(Checkpoint.configFile))
        let layout = try ClusterLayout.derived(worldSize: 4, routedExperts: config.nRoutedExperts)
        let manifest = try #require(try ShardManifest.read(in: directory, host: "vm"))
        #expect(try ShardManifest.read(in: shards.model, host: "vm") == nil, "a whole model has no manifest")

        try manifest.check(rank: 2, layout: layout, config: config, directory: directory, host: "vm", checksums: true)

        func problem(_ body: () throws -> Void) -> ShardCheckError? {
            do { try body() } catch let error as ShardCheckError { return error } catch { Issue.record("\(error)") }
            Issue.record("expected a ShardCheckError")
            return nil
        }
        let wrongRank = problem { try manifest.check(rank: 3, layout: layout, config: config, directory: directory, host: "vm", checksums: true) }
        #expect(wrongRank?.node == "node-b" && wrongRank?.file == directory.appendingPathComponent(ShardManifest.fileName).path)
        #expect(wrongRank?.description.contains("serves rank 2 (expert 0-7), not rank 3 (expert 8-15)") == true)

        let five = try ClusterLayout.derived(worldSize: 5, routedExperts: config.nRoutedExperts)
        let wrongSize = problem { try manifest.check(rank: 2, layout: five, config: config, directory: directory, host: "vm", checksums: true) }
        #expect(wrongSize?.problem == .otherWorldSize(shard: 4, job: 5))

        var lacking = manifest
        let dropped = "model.layers.2.mlp.experts.5.up_proj.weight"
        lacking.files = lacking.files.map { file in
            var file = file
            file.tensors = file.tensors?.filter { $0 != dropped }
            return file
        }
        let missing = problem { try lacking.check(rank: 2, layout: layout, config: config, directory: directory, host: "vm", checksums: true) }
        #expect(missing?.problem == .missingTensors([dropped], rank: ShardManifest.Rank(rank: 2, role: .expert, experts: Array(0..<8))))

        // Only rank 0 tokenizes: an expert rank does not read the tokenizer, its weights it does.
        try FileManager.default.removeItem(at: directory.appendingPathComponent("tokenizer.json"))
        try manifest.check(rank: 2, layout: layout, config: config, directory: directory, host: "vm", checksums: true)
        let weights = directory.appendingPathComponent(Checkpoint.singleFile)
        try FileManager.default.removeItem(at: weights)
        let gone = problem { try manifest.check(rank: 2, layout: layout, config: config, directory: directory, host: "node-b", checksums: false) }
        #expect(gone?.problem == .missingFile)
        #expect(gone?.description.hasPrefix("node node-b's shard: \(weights.path) is missing") == true)
    }

    // MARK: --mlock

    /// With RLIMIT_MEMLOCK at 64 KiB (and, as root, CAP_IPC_LOCK dropped so the limit applies),
    /// `--mlock` stops the job at start-up: each rank whose weights do not fit says how many
    /// bytes it could not lock, where, the limit and the shortfall. Without the limit the same
    /// command succeeds and prints the same logits as without --mlock.
    @Test(.timeLimit(.minutes(1)), .enabled(if: getuid() != 0 || FileManager.default.isExecutableFile(atPath: "/usr/sbin/capsh"),
                                             "as root, mlock ignores RLIMIT_MEMLOCK unless capsh can drop CAP_IPC_LOCK"))
    func mlockBeyondTheLimitFailsAtStartup() throws {
        let shards = try Self.shard(.tiny)
        defer { shards.remove() }
        let command = ["logits", "--tokens", "0,5,6", "--model", shards.model.path]
        let locked = try Conclave.local(command + ["--mlock"])
        let plain = try Conclave.local(command)
        #expect(locked.succeeded && locked.stdout == plain.stdout, "\(locked.report)\n\(plain.report)")

        var mpirun = [try Conclave.mpirunPath(), "--oversubscribe", "-np", "4", "--mca", "btl", "self,vader"]
        if getuid() == 0 { mpirun.insert("--allow-run-as-root", at: 1) }
        let script = "ulimit -l 64 && exec " + (mpirun + [try Conclave.binary()] + command + ["--mlock"]).joined(separator: " ")
        let shell = getuid() == 0 ? ["/usr/sbin/capsh", "--drop=cap_ipc_lock", "--", "-c", script] : ["/bin/sh", "-c", script]
        let result = try MPIJob(executable: shell[0], arguments: Array(shell.dropFirst()), environment: Conclave.childEnvironment)
            .finish(timeout: 30)
        Conclave.expectClean(result)
        #expect(result.termination != .exited(0), "expected a failure\n\(result.report)")
        #expect(result.seconds < 10, "took \(result.seconds) s\n\(result.report)")
        #expect(result.stdout.isEmpty)
        // Each expert rank holds 4.5 MiB of weights, far above 64 KiB.
        for rank in [2, 3] {
            let line = result.stderrLines.first { $0.contains("rank \(rank) (expert): cannot lock ") }
            #expect(line?.contains(" bytes of weights in memory on ") == true, "\(result.report)")
            #expect(line?.contains("(rank \(rank)): Cannot allocate memory; RLIMIT_MEMLOCK is 65536 bytes") == true, "\(result.report)")
            #expect(line?.contains(" short; raise it") == true, "\(result.report)")
        }
    }

    static let cgroupRoot = "/sys/fs/cgroup/memory"

    /// In a memory cgroup (v1) whose limit is below the tiny model's weights, `--mlock` refuses
    /// before locking — locking past the limit would summon the OOM killer instead of an error —
    /// naming the limit, the cgroup's unreclaimable memory and the shortfall.
    @Test(.timeLimit(.minutes(1)), .enabled(if: getuid() == 0 && access(cgroupRoot, W_OK) == 0, "needs root and the cgroup v1 memory controller"))
    func mlockBeyondTheCgroupLimitIsRefused() throws {
        let shards = try Self.shard(.tiny)
        defer { shards.remove() }
        let cgroup = "\(Self.cgroupRoot)/conclave-mlock-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: false)
        defer { rmdir(cgroup) }
        let limit = 10 << 20
        try Data("\(limit)".utf8).write(to: URL(fileURLWithPath: cgroup + "/memory.limit_in_bytes"))
        let command = try [Conclave.binary(), "logits", "--tokens", "0,5,6", "--model", shards.model.path, "--mlock"]
        let script = "echo $$ > \(cgroup)/cgroup.procs && exec " + command.joined(separator: " ")
        let result = try MPIJob(executable: "/bin/sh", arguments: ["-c", script], environment: Conclave.childEnvironment).finish(timeout: 30)
        Conclave.expectClean(result)
        #expect(result.termination != .exited(0), "expected a refusal\n\(result.report)")
        let line = result.stderrLines.first { $0.contains("cannot lock ") }
        #expect(line?.contains("bytes of weights in memory on ") == true, "\(result.report)")
        #expect(line?.contains("more than the memory cgroup allows") == true, "\(result.report)")
        #expect(line?.contains("the memory cgroup's limit is \(limit) bytes (10.0 MiB) (\(cgroup)/memory.stat (hierarchical_memory_limit)) with ") == true,
                "\(result.report)")
        #expect(line?.hasSuffix(" short") == true, "\(result.report)")
    }
}
