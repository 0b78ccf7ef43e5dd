import Checkpoint
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// End-to-end runs of the built `conclave` under real `mpirun` jobs, compared with the same
/// command run as one plain process and with the transformers references. Jobs run one at a
/// time (the machine has 2 cores and every job oversubscribes it); each has a hard timeout
/// and is checked for leftover rank processes (see `MPIJob`).
@Suite(.serialized) struct ClusterRun {
    // MARK: fixtures and parsing

    struct Reference {
        let promptText: String
        let prompt: [Int]
        let greedy: [Int]
        let routingLayer: Int
        let routing: [[Int]]
    }

    static func reference(_ fixture: String) throws -> Reference {
        let data = try Data(contentsOf: Conclave.fixture(fixture).appendingPathComponent("reference.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let routing = try #require(root["routing"] as? [String: Any])
        return Reference(promptText: try #require(root["prompt_text"] as? String),
                         prompt: try #require(root["prompt"] as? [Int]),
                         greedy: try #require(root["greedy"] as? [Int]),
                         routingLayer: try #require(routing["layer"] as? Int),
                         routing: try #require(routing["experts"] as? [[Int]]))
    }

    /// What `conclave logits` printed.
    struct LogitsOutput {
        let tokens: [Int]
        let logits: [[Double]]
        let routingLayer: Int
        let routing: [[Int]]
    }

    static func parseLogits(_ result: MPIJob.Result, sourceLocation: SourceLocation = #_sourceLocation) throws -> LogitsOutput {
        let lines = result.stdoutLines
        try #require(lines.count == 1, "expected exactly one JSON line on stdout (printed once, by rank 0)\n\(result.report)",
                     sourceLocation: sourceLocation)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any],
                                  "stdout is not a JSON object\n\(result.report)", sourceLocation: sourceLocation)
        let routing = try #require(object["routing"] as? [String: Any], "no routing in the output\n\(result.report)",
                                   sourceLocation: sourceLocation)
        return LogitsOutput(tokens: try #require(object["tokens"] as? [Int], sourceLocation: sourceLocation),
                            logits: try #require(object["logits"] as? [[Double]], sourceLocation: sourceLocation),
                            routingLayer: try #require(routing["layer"] as? Int, sourceLocation: sourceLocation),
                            routing: try #require(routing["experts"] as? [[Int]], sourceLocation: sourceLocation))
    }

    /// Every position's logits are the same bits in the cluster's output as in one process's.
    static func expectSameLogits(_ one: LogitsOutput, _ many: LogitsOutput, sourceLocation: SourceLocation = #_sourceLocation) {
        for (position, (a, b)) in zip(one.logits, many.logits).enumerated() {
            let differing = zip(a, b).filter { $0 != $1 }.count
            #expect(a.count == b.count && !a.isEmpty && differing == 0,
                    "position \(position): \(differing) of \(a.count) logits differ between cluster and one process", sourceLocation: sourceLocation)
        }
    }

    /// `logits` of the fixture's reference prompt, with its routing layer, in one process and
    /// on `ranks` ranks with `options`: every position's logits are the same bits, and the
    /// routing is the same. Returns the cluster's run and both outputs.
    @discardableResult
    static func expectLogitsMatchOneProcess(_ fixture: String, ranks: Int, _ options: [String],
                                            sourceLocation: SourceLocation = #_sourceLocation) throws
        -> (cluster: MPIJob.Result, one: LogitsOutput, many: LogitsOutput) {
        let reference = try reference(fixture)
        let command = ["logits", "--model", Conclave.fixture(fixture).path, "--tokens", reference.prompt.map(String.init).joined(separator: ","),
                       "--routing-layer", "\(reference.routingLayer)"]
        let single = try Conclave.local(command, sourceLocation: sourceLocation)
        try #require(single.succeeded, "single-process run failed\n\(single.report)", sourceLocation: sourceLocation)
        let cluster = try Conclave.mpi(ranks: ranks, command + options, sourceLocation: sourceLocation)
        try #require(cluster.succeeded, "cluster run failed\n\(cluster.report)", sourceLocation: sourceLocation)
        let one = try parseLogits(single, sourceLocation: sourceLocation), many = try parseLogits(cluster, sourceLocation: sourceLocation)
        try #require(one.logits.count == reference.prompt.count && many.logits.count == reference.prompt.count,
                     "positions: single \(one.logits.count), cluster \(many.logits.count), prompt \(reference.prompt.count)",
                     sourceLocation: sourceLocation)
        expectSameLogits(one, many, sourceLocation: sourceLocation)
        #expect(many.routing == one.routing, "cluster routing \(many.routing)\nsingle routing \(one.routing)", sourceLocation: sourceLocation)
        return (cluster, one, many)
    }

    /// Four prompts (the fixture's reference prompt and three others) generated greedily
    /// together, 6 tokens each, in one process and on `ranks` ranks with `layout`: the cluster
    /// prints what one process prints. Returns the cluster's run and its profile, written in `directory`.
    static func expectBatchedGenerationMatchesOneProcess(_ fixture: String, ranks: Int, layout: URL, in directory: URL,
                                                         sourceLocation: SourceLocation = #_sourceLocation) throws
        -> (cluster: MPIJob.Result, profile: URL) {
        let prompts = directory.appendingPathComponent("prompts.txt")
        try Data([try reference(fixture).promptText, "Hello, world! How are you today?", "a", "The quick brown fox"]
            .joined(separator: "\n").utf8).write(to: prompts)
        let profile = directory.appendingPathComponent("profile.json")
        let command = ["generate", "--model", Conclave.fixture(fixture).path, "--prompts-file", prompts.path, "--max-tokens", "6",
                       "--ignore-eos", "--json"]
        let single = try Conclave.local(command, sourceLocation: sourceLocation)
        try #require(single.succeeded, "single-process run failed\n\(single.report)", sourceLocation: sourceLocation)
        let cluster = try Conclave.mpi(ranks: ranks, command + ["--layout", layout.path, "--profile-out", profile.path],
                                       sourceLocation: sourceLocation)
        try #require(cluster.succeeded, "cluster run failed\n\(cluster.report)", sourceLocation: sourceLocation)
        #expect(cluster.stdoutLines == single.stdoutLines && single.stdoutLines.count == 4, sourceLocation: sourceLocation)
        return (cluster, profile)
    }

    /// The token ids of `generate --json` output lines, in order.
    static func generatedTokens(_ result: MPIJob.Result, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[Int]] {
        try result.stdoutLines.map { line in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                                      "stdout line is not a JSON object: \(line)\n\(result.report)", sourceLocation: sourceLocation)
            return try #require(object["tokens"] as? [Int], "no tokens in \(line)", sourceLocation: sourceLocation)
        }
    }

    static func temporaryDirectory(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-run-\(label)-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// `configs/layouts/fixture-5-uneven.json` (router 0, attention 1, experts 2: 0-1, 3: 2-9, 4: 10-15),
    /// or the same layout written to a temporary file when the repository does not have it.
    static func unevenLayout() throws -> URL {
        let file = Conclave.packageRoot.appendingPathComponent("configs/layouts/fixture-5-uneven.json")
        if FileManager.default.fileExists(atPath: file.path) { return file }
        let url = try temporaryDirectory("layout").appendingPathComponent("fixture-5-uneven.json")
        try Data(#"{"router": 0, "attention": [1], "experts": {"2": "0-1", "3": "2-9", "4": "10-15"}}"#.utf8).write(to: url)
        return url
    }

    // MARK: 1. logits parity

    struct ParityCase: CustomTestStringConvertible, Sendable {
        let fixture: String
        let ranks: Int
        let attentionRanks: Int?
        let unevenLayout: Bool
        var testDescription: String {
            "\(fixture) on -np \(ranks)" + (attentionRanks.map { ", --attention-ranks \($0)" } ?? "") + (unevenLayout ? ", uneven layout" : "")
        }
    }

    static let parityCases = [
        ParityCase(fixture: "v3-sigmoid-grouped", ranks: 3, attentionRanks: nil, unevenLayout: false),
        ParityCase(fixture: "v3-yarn-sharded", ranks: 4, attentionRanks: nil, unevenLayout: false),
        ParityCase(fixture: "v2-softmax-plainq", ranks: 5, attentionRanks: 2, unevenLayout: false),
        ParityCase(fixture: "v3-fp8", ranks: 5, attentionRanks: nil, unevenLayout: true),
        ParityCase(fixture: "v3-bf16", ranks: 6, attentionRanks: 2, unevenLayout: false),
        ParityCase(fixture: "v3-fp8-release", ranks: 5, attentionRanks: nil, unevenLayout: true),
        ParityCase(fixture: "v3-fp8-release", ranks: 6, attentionRanks: 1, unevenLayout: false),
    ]

    /// The cluster's logits at every prompt position are the same bits as one process's
    /// (experts are summed in the gate's order wherever they ran), and the layer-1 routing
    /// is identical to one process's and to transformers'.
    @Test(.timeLimit(.minutes(2)), arguments: parityCases)
    func logitsMatchOneProcess(_ c: ParityCase) throws {
        let reference = try Self.reference(c.fixture)
        var clusterOptions: [String] = []
        if let a = c.attentionRanks { clusterOptions += ["--attention-ranks", "\(a)"] }
        if c.unevenLayout { clusterOptions += ["--layout", try Self.unevenLayout().path] }

        let (_, one, many) = try Self.expectLogitsMatchOneProcess(c.fixture, ranks: c.ranks, clusterOptions)
        #expect(many.tokens == reference.prompt)
        #expect(one.routingLayer == reference.routingLayer && many.routingLayer == reference.routingLayer)
        #expect(many.routing == reference.routing, "cluster routing \(many.routing)\nreference routing \(reference.routing)")
    }

    /// One and two compute threads give the same logits bits, and a sampled generation with
    /// a seed gives the same tokens on one thread, on two, and again.
    @Test(.timeLimit(.minutes(1)), arguments: ["v3-bf16", "v3-fp8-release"])
    func threadCountDoesNotChangeResults(_ fixture: String) throws {
        let reference = try Self.reference(fixture)
        let model = Conclave.fixture(fixture).path, prompt = reference.prompt.map(String.init).joined(separator: ",")
        let logits = ["logits", "--model", model, "--tokens", prompt, "--routing-layer", "\(reference.routingLayer)"]
        let sampled = ["generate", "--model", model, "--tokens", prompt, "--max-tokens", "12", "--temperature", "1.5",
                       "--seed", "7", "--ignore-eos", "--json"]
        for command in [logits, sampled] {
            let runs = try [1, 2, 2].map { threads in
                let run = try Conclave.local(command, environment: ["CONCLAVE_THREADS=\(threads)"])
                try #require(run.succeeded && run.stdoutLines.count == 1, "\(command[0]) on \(threads) threads\n\(run.report)")
                return run.stdoutLines
            }
            #expect(runs[0] == runs[1], "\(command[0]): 1 thread vs 2 threads")
            #expect(runs[1] == runs[2], "\(command[0]): two runs on 2 threads")
        }
    }

    // MARK: 2. greedy generation parity

    /// `generate --tokens <reference prompt> --max-tokens 8 --json` on 4 ranks gives the same
    /// tokens as one process and as transformers' greedy continuation.
    @Test(.timeLimit(.minutes(1)))
    func greedyTokensMatchOneProcess() throws {
        let fixture = "v3-fp8"
        let reference = try Self.reference(fixture)
        let command = ["generate", "--model", Conclave.fixture(fixture).path,
                       "--tokens", reference.prompt.map(String.init).joined(separator: ","), "--max-tokens", "8", "--json"]
        let single = try Conclave.local(command)
        try #require(single.succeeded, "single-process run failed\n\(single.report)")
        let cluster = try Conclave.mpi(ranks: 4, command)
        try #require(cluster.succeeded, "cluster run failed\n\(cluster.report)")

        let one = try Self.generatedTokens(single), many = try Self.generatedTokens(cluster)
        #expect(many.count == 1, "expected one JSON line\n\(cluster.report)")
        #expect(one == [reference.greedy], "single process \(one) vs reference \(reference.greedy)")
        #expect(many == [reference.greedy], "cluster \(many) vs reference \(reference.greedy)")
        #expect(cluster.stdoutLines == single.stdoutLines, "JSON lines differ\n\(cluster.report)\n\(single.report)")
    }

    /// `--prompts-file` with three text prompts (one batch) on 5 ranks with two attention ranks
    /// prints the same JSON lines as one process.
    @Test(.timeLimit(.minutes(1)))
    func promptsFileBatchMatchesOneProcess() throws {
        let fixture = "v3-yarn-sharded"
        let reference = try Self.reference(fixture)
        let directory = try Self.temporaryDirectory("prompts")
        defer { try? FileManager.default.removeItem(at: directory) }
        let prompts = directory.appendingPathComponent("prompts.txt")
        try Data([reference.promptText, "Hello, world! How are you today?", "a"].joined(separator: "\n").utf8).write(to: prompts)
        let command = ["generate", "--model", Conclave.fixture(fixture).path, "--prompts-file", prompts.path,
                       "--max-tokens", "8", "--json"]

        let single = try Conclave.local(command)
        try #require(single.succeeded, "single-process run failed\n\(single.report)")
        let cluster = try Conclave.mpi(ranks: 5, command + ["--attention-ranks", "2"])
        try #require(cluster.succeeded, "cluster run failed\n\(cluster.report)")

        #expect(single.stdoutLines.count == 3, "expected one JSON line per prompt\n\(single.report)")
        #expect(cluster.stdoutLines == single.stdoutLines, "cluster vs single process\n\(cluster.report)\n\(single.report)")
        // The first prompt is the reference's text: its encoding (with bos) is the reference prompt.
        if let first = single.stdoutLines.first,
           let object = try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any] {
            #expect(object["prompt"] as? [Int] == reference.prompt)
        }
    }

    // MARK: 3. memory scaling

    /// Resident weight bytes per rank, from `--profile-out`.
    static func ranksTable(ranks: Int, model: String) throws -> [(rank: Int, role: String, experts: [Int], bytes: Int)] {
        let directory = try temporaryDirectory("profile")
        defer { try? FileManager.default.removeItem(at: directory) }
        let profile = directory.appendingPathComponent("profile.json")
        let result = try Conclave.mpi(ranks: ranks, ["logits", "--model", model, "--tokens", "0,5,6",
                                                     "--profile-out", profile.path])
        try #require(result.succeeded, "cluster run failed\n\(result.report)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: profile)) as? [String: Any])
        let rows = try #require(root["ranks"] as? [[String: Any]], "no ranks table in \(profile.path)")
        return try rows.map {
            (try #require($0["rank"] as? Int), try #require($0["role"] as? String), try #require($0["experts"] as? [Int]),
             try #require($0["resident_weight_bytes"] as? Int))
        }.sorted { $0.rank < $1.rank }
    }

    /// Twice the expert ranks (-np 4 → -np 6) halves each expert rank's resident weights exactly.
    @Test(.timeLimit(.minutes(1)))
    func expertWeightsHalveWithTwiceTheExpertRanks() throws {
        let model = Conclave.fixture("v3-sigmoid-grouped").path
        let four = try Self.ranksTable(ranks: 4, model: model)
        let six = try Self.ranksTable(ranks: 6, model: model)
        #expect(four.map(\.role) == ["router", "attention", "expert", "expert"])
        #expect(six.map(\.role) == ["router", "attention", "expert", "expert", "expert", "expert"])
        let expertsFour = four.filter { $0.role == "expert" }, expertsSix = six.filter { $0.role == "expert" }
        #expect(expertsFour.map(\.experts) == [Array(0..<8), Array(8..<16)])
        #expect(expertsSix.map(\.experts) == [Array(0..<4), Array(4..<8), Array(8..<12), Array(12..<16)])
        let before = try #require(expertsFour.first?.bytes)
        #expect(before > 0)
        #expect(expertsFour.allSatisfy { $0.bytes == before }, "expert ranks of -np 4 differ: \(expertsFour.map(\.bytes))")
        for rank in expertsSix {
            #expect(2 * rank.bytes == before, "rank \(rank.rank) of -np 6 holds \(rank.bytes) bytes; -np 4's expert ranks hold \(before)")
        }
        // The other roles do not change with the number of expert ranks.
        #expect(four[0].bytes == six[0].bytes && four[1].bytes == six[1].bytes)
    }

    /// `tools/plot-profile` draws a run's `--profile-out` JSON: one panel per MoE layer
    /// (the fixture has one, layer 1) and a cell per rank pair.
    @Test(.timeLimit(.minutes(1)))
    func profilePlotDrawsEveryLayerAndRankPair() throws {
        let directory = try Self.temporaryDirectory("plot")
        defer { try? FileManager.default.removeItem(at: directory) }
        let profile = directory.appendingPathComponent("profile.json"), svg = directory.appendingPathComponent("profile.svg")
        let result = try Conclave.mpi(ranks: 4, ["generate", "--model", Conclave.fixture("v3-sigmoid-grouped").path, "--tokens", "0,5,6",
                                                 "--max-tokens", "4", "--profile-out", profile.path])
        try #require(result.succeeded, "cluster run failed\n\(result.report)")
        // Every rank reported its activity; the expert ranks' rows agree with the router's dispatch counts.
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: profile)) as? [String: Any])
        let activity = try #require(json["rank_activity"] as? [[String: Any]])
        #expect(activity.compactMap { $0["role"] as? String } == ["router", "attention", "expert", "expert"])
        let served = activity.compactMap { $0["expert_rows"] as? Int }.reduce(0, +)
        let layers = try #require(json["layers"] as? [[String: Any]])
        let dispatched = layers.flatMap { ($0["rows_per_expert_rank"] as? [String: Int] ?? [:]).values }.reduce(0, +)
        #expect(served == dispatched && served > 0, "expert ranks served \(served) rows, the router dispatched \(dispatched)")
        let plot = Process()
        plot.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        plot.arguments = ["python3", Conclave.packageRoot.appendingPathComponent("tools/plot-profile").path, profile.path, svg.path]
        try plot.run()
        plot.waitUntilExit()
        #expect(plot.terminationStatus == 0)
        let text = try String(contentsOf: svg, encoding: .utf8)
        #expect(XMLParser(data: Data(text.utf8)).parse(), "the plot is not well-formed SVG")
        #expect(text.contains("MoE layer 1:"))
        #expect(!text.contains("MoE layer 0:"), "layer 0 is dense and has no all-to-all")
        #expect(text.components(separatedBy: "width=\"68\"").count - 1 == 16, "expected a 4 × 4 bytes matrix")
    }

    // MARK: 4. layout for another world size

    /// A 5-rank layout under -np 4: non-zero exit within 10 s, and exactly one error line, from
    /// rank 0, naming the world size; no other rank prints anything.
    @Test(.timeLimit(.minutes(1)))
    func layoutForAnotherWorldSizeIsOneErrorLine() throws {
        let result = try Conclave.mpi(ranks: 4, ["logits", "--model", Conclave.fixture("v3-sigmoid-grouped").path,
                                                 "--tokens", "0,5,6", "--layout", try Self.unevenLayout().path],
                                      mpiOptions: ["--tag-output"], timeout: 30)
        #expect(result.termination != .exited(0), "expected a failure\n\(result.report)")
        #expect(result.seconds < 10, "took \(result.seconds) s\n\(result.report)")
        #expect(result.stdout.isEmpty, "stdout should be empty\n\(result.report)")
        // --tag-output prefixes every line a rank prints with "[job,rank]<stream>:"; mpirun's own
        // banner lines are untagged.
        let tagged = result.stderrLines.compactMap { line -> (rank: Int, text: String)? in
            guard line.hasPrefix("["), let close = line.firstIndex(of: "]"), let colon = line.firstIndex(of: ":") else { return nil }
            let ids = line[line.index(after: line.startIndex)..<close].split(separator: ",")
            guard ids.count == 2, let rank = Int(ids[1]) else { return nil }
            return (rank, String(line[line.index(after: colon)...]))
        }
        #expect(tagged.allSatisfy { $0.rank == 0 }, "ranks other than 0 printed: \(tagged.filter { $0.rank != 0 })\n\(result.report)")
        let errors = result.stderrLines.filter { $0.lowercased().contains("error") && !$0.hasPrefix("mpirun") }
        #expect(errors.count == 1, "expected exactly one error line\n\(result.report)")
        #expect(tagged.count == 1, "expected rank 0 to print exactly one line\n\(result.report)")
        if let line = tagged.first?.text {
            #expect(line.contains(" error conclave: rank=0 "), "not an error log line of rank 0: \(line)")
            #expect(line.contains("-np 4"), "the error does not name the world size: \(line)")
        }
    }

    /// Ranks whose copies of the model differ (nodes with their own disks) stop before
    /// loading, with rank 0 naming the odd ranks. MPMD launch: rank 0 gets one directory,
    /// ranks 1-3 a copy whose config.json differs.
    @Test func differingModelCopiesStopTheJob() throws {
        let original = Conclave.fixture("v3-sigmoid-grouped")
        let copy = try Conclave.fixtureCopy("v3-sigmoid-grouped", as: "copy") { $0["rms_norm_eps"] = 1e-5 }
        defer { try? FileManager.default.removeItem(at: copy) }

        let arguments = ["logits", "--tokens", "0,5,6", "--model"]
        let result = try Conclave.mpi(ranks: 1, arguments + [original.path] + [":", "-np", "3", try Conclave.binary()] + arguments + [copy.path],
                                      timeout: 30)
        #expect(result.termination != .exited(0), "expected a failure\n\(result.report)")
        #expect(result.seconds < 10, "took \(result.seconds) s\n\(result.report)")
        #expect(result.stdout.isEmpty, "stdout should be empty\n\(result.report)")
        #expect(result.stderrLines.contains { $0.contains("rank 1, 2, 3") && $0.contains("differs from rank 0") },
                "no line names the ranks with a different model\n\(result.report)")
    }

    /// A request the router refuses before any step (a prompt longer than the context)
    /// shuts every rank down cleanly: one error, non-zero exit, nothing left running.
    @Test func refusedRequestShutsTheClusterDown() throws {
        let tokens = Array(repeating: "5", count: 300).joined(separator: ",")
        let result = try Conclave.mpi(ranks: 4, ["generate", "--model", Conclave.fixture("v3-sigmoid-grouped").path,
                                                 "--tokens", tokens, "--max-tokens", "3"], timeout: 30)
        #expect(result.termination != .exited(0), "expected a failure\n\(result.report)")
        #expect(result.seconds < 10, "took \(result.seconds) s\n\(result.report)")
        let errors = result.stderrLines.filter { $0.contains(" error conclave: ") }
        #expect(errors.count == 1 && errors[0].hasSuffix("request 0 has a 300-token prompt; the model's context is 256 positions"),
                "\(result.report)")
        #expect(!result.stderrLines.contains { $0.contains("MPI_ABORT") }, "the job was aborted instead of shut down\n\(result.report)")
    }

    // MARK: 5. missing expert tensor

    /// A copy of `fixture` whose weights lack `tensor`, written with `SafetensorsWriter`.
    static func copyOfFixture(_ fixture: String, without tensor: String, in directory: URL) throws -> URL {
        let source = Conclave.fixture(fixture)
        let target = directory.appendingPathComponent(fixture)
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path) where !name.hasSuffix(".safetensors") {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: target.appendingPathComponent(name))
        }
        let file = try SafetensorsFile(url: source.appendingPathComponent(Checkpoint.singleFile))
        try #require(file.tensors[tensor] != nil, "\(tensor) is not in the fixture \(fixture)")
        let writer = SafetensorsWriter()
        writer.metadata = file.metadata
        for name in file.tensorNames where name != tensor {
            let info = file.tensors[name]!
            let bytes = try file.bytes(name)
            try writer.add(name, dtype: info.dtype, shape: info.shape) { $0.copyMemory(from: bytes) }
        }
        try writer.write(to: target.appendingPathComponent(Checkpoint.singleFile))
        let check = try Checkpoint(directory: target)
        try #require(!check.contains(tensor) && check.tensorNames.count == file.tensors.count - 1)
        return target
    }

    /// An expert rank whose checkpoint lacks one of its expert tensors: the job ends non-zero
    /// within 10 s and stderr names the tensor, the file it should be in, and the rank.
    @Test(.timeLimit(.minutes(1)))
    func missingExpertTensorStopsTheJob() throws {
        let directory = try Self.temporaryDirectory("missing")
        defer { try? FileManager.default.removeItem(at: directory) }
        let tensor = "model.layers.1.mlp.experts.12.up_proj.weight"
        let model = try Self.copyOfFixture("v3-sigmoid-grouped", without: tensor, in: directory)
        let result = try Conclave.mpi(ranks: 4, ["generate", "--model", model.path, "--tokens", "0,5,6",
                                                 "--max-tokens", "8", "--json"], timeout: 30)
        #expect(result.termination != .exited(0), "expected a failure\n\(result.report)")
        #expect(result.seconds < 10, "took \(result.seconds) s\n\(result.report)")
        #expect(result.stdout.isEmpty, "stdout should be empty\n\(result.report)")
        let lines = result.stderrLines.filter { $0.contains(tensor) }
        #expect(!lines.isEmpty, "stderr does not name \(tensor)\n\(result.report)")
        #expect(lines.contains { $0.contains(model.path) }, "stderr does not name the file or directory \(model.path)\n\(result.report)")
        // -np 4: experts 8-15 live on rank 3.
        #expect(lines.contains { $0.contains("rank 3") }, "stderr does not name the expert rank (3)\n\(result.report)")
    }

    // MARK: 6. a rank dies mid-run

    /// SIGKILL an expert rank in the middle of a long generation: mpirun ends non-zero within
    /// 30 s, says which rank died of which signal, and no rank process is left running.
    @Test(.timeLimit(.minutes(1)))
    func killedExpertRankEndsTheJob() throws {
        // --json: nothing reaches stdout before the generation ends.
        let job = try Conclave.startMPI(ranks: 4, ["generate", "--model", Conclave.longContextFixture("v3-sigmoid-grouped").path,
                                                   "--tokens", "0,5,6", "--max-tokens", "100000", "--ignore-eos", "--json"])
        // Running: the start-up table (printed once every rank has loaded) is on stderr.
        guard job.wait(upTo: 30, until: { job.stderrText.contains("role") }) else {
            Issue.record("the cluster did not start within 30 s\n\(job.finish(timeout: 0).report)")
            return
        }
        usleep(300_000)
        guard job.isRunning, job.stdoutText.isEmpty else {
            Issue.record("the generation ended before a rank could be killed: the test no longer tests a mid-run death\n\(job.finish(timeout: 0).report)")
            return
        }
        let victim = try #require(job.rankProcess(2), "no child of mpirun has OMPI_COMM_WORLD_RANK=2")
        #expect(kill(victim, SIGKILL) == 0)
        let killedAt = job.elapsed

        let result = job.finish(timeout: killedAt + 30)
        Conclave.expectClean(result)
        #expect(result.termination != .exited(0), "mpirun exited 0 after a rank was killed\n\(result.report)")
        #expect(result.seconds - killedAt < 30, "mpirun took \(result.seconds - killedAt) s to end after the kill\n\(result.report)")
        // Open MPI 4.1: "mpirun noticed that process rank 2 with PID 0 on node vm exited on signal 9 (Killed)."
        let notice = result.stderrLines.first { $0.contains("process rank 2") }
        #expect(notice != nil, "mpirun's output does not name rank 2\n\(result.report)")
        #expect(notice?.contains("signal 9") == true, "mpirun's output does not name signal 9: \(notice ?? "-")\n\(result.report)")
        #expect(!result.stdout.contains("finish_reason"), "a result was printed despite the dead rank\n\(result.report)")
    }

    // MARK: 7. the launcher itself

    /// The session of an mpirun job holds its rank processes (so leftover checks see them), and
    /// the timeout kills mpirun and all of them.
    @Test(.timeLimit(.minutes(1)))
    func hardTimeoutKillsEveryRank() throws {
        let job = try Conclave.startMPI(ranks: 3, ["generate", "--model", Conclave.longContextFixture("v3-sigmoid-grouped").path,
                                                   "--tokens", "0,5,6", "--max-tokens", "100000", "--ignore-eos", "--json"])
        let ranks = job.wait(upTo: 30, until: { (0..<3).allSatisfy { job.rankProcess($0) != nil } })
        try #require(ranks, "mpirun did not start 3 ranks within 30 s")
        let pids = (0..<3).compactMap { job.rankProcess($0) }
        #expect(Set(pids).isSubset(of: Set(job.liveDescendants().map(\.pid))), "the job's session does not hold its ranks")
        let result = job.finish(timeout: job.elapsed + 1)
        #expect(result.timedOut, "the job was expected to hit its timeout\n\(result.report)")
        #expect(result.termination == .signaled(SIGKILL))
        #expect(result.leftovers.isEmpty, "\(result.leftovers)")
        for pid in pids {
            let state = MPIJob.entry(pid)?.state
            #expect(state == nil || state == "Z", "rank process \(pid) is still there (state \(state.map(String.init) ?? "-"))")
        }
    }
}
