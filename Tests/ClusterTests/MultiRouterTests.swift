import Checkpoint
import Cluster
import Foundation
import TestSupport
import Testing

/// Layouts with several routers (`"routers"`: router rank → the attention ranks it serves):
/// parsing, every validation mistake named, the start-up table.
@Suite struct RouterMaps {
    static func error(_ json: String, np: Int = 6, sourceLocation: SourceLocation = #_sourceLocation) throws -> (message: String, file: String) {
        let url = try layoutFile(json, name: "routers")
        let message = layoutError({ () throws(LayoutError) in try ClusterLayout.load(url, worldSize: np, routedExperts: 16) },
                                  sourceLocation: sourceLocation)?.description ?? ""
        #expect(!message.contains("\n"), "message spans lines: \(message)", sourceLocation: sourceLocation)
        return (message, url.path)
    }

    @Test func twoRoutersParse() throws {
        let url = Conclave.packageRoot.appendingPathComponent("configs/layouts/fixture-6-two-routers.json")
        #expect(try ClusterLayout.worldSize(of: url) == 6)
        let layout = try ClusterLayout.load(url, worldSize: 6, routedExperts: 16)
        #expect(layout.router == 0)
        #expect(layout.routerRanks == [0, 2])
        #expect(layout.routers == [0: [1], 2: [3]])
        #expect(layout.attentionRanks == [1, 3])
        #expect(layout.expertRanks == [4, 5])
        #expect((0..<6).map { layout.role(of: $0) } == [.router, .attention, .router, .attention, .expert, .expert])
        #expect(layout.router(serving: 1) == 0 && layout.router(serving: 3) == 2)
        // What fileText writes reads back as the same layout.
        let again = try ClusterLayout.load(try layoutFile(layout.fileText()), worldSize: 6, routedExperts: 16)
        #expect(again == layout)
        // With "attention" given too, it must be what the routers serve.
        let explicit = try ClusterLayout.load(try layoutFile(#"{"routers": {"0": [1], "2": [3]}, "attention": "1,3", "experts": {"4": "0-7", "5": "8-15"}}"#),
                                              worldSize: 6, routedExperts: 16)
        #expect(explicit == layout)
    }

    @Test func singleRouterFormUnchanged() throws {
        let layout = try ClusterLayout.load(try layoutFile(#"{"router": 0, "attention": [1, 2], "experts": {"3": "0-7", "4": "8-15"}}"#),
                                            worldSize: 5, routedExperts: 16)
        #expect(layout.routers == [0: [1, 2]])
        #expect(layout.routerRanks == [0])
        #expect(!layout.fileText().contains("routers"))
    }

    @Test func badRouterMapsAreNamed() throws {
        let experts = #""experts": {"4": "0-7", "5": "8-15"}"#
        var (message, file) = try Self.error(#"{"routers": {"1": [0], "2": [3]}, \#(experts)}"#)
        #expect(message.contains(file) && message.contains("not rank 0") && message.contains("1-2"), "\(message)")
        (message, file) = try Self.error(#"{"router": 0, "routers": {"0": [1], "2": [3]}, \#(experts)}"#)
        #expect(message.contains(file) && message.contains("both \"router\" and \"routers\""), "\(message)")
        (message, file) = try Self.error(#"{"routers": {"0": [1, 3], "2": [3]}, \#(experts)}"#)
        #expect(message.contains(file) && message.contains("attention rank 3 is served by more than one router")
                && message.contains("routers 0 and 2"), "\(message)")
        (message, file) = try Self.error(#"{"routers": {"0": [1], "2": [1]}, "attention": [1, 3], \#(experts)}"#)
        #expect(message.contains("attention rank 1 is served by more than one router"), "\(message)")
        (message, file) = try Self.error(#"{"routers": {"0": [1], "2": []}, "attention": [1, 3], \#(experts)}"#)
        #expect(message.contains(file) && message.contains("router 2 serves no attention rank"), "\(message)")
        (message, file) = try Self.error(#"{"routers": {"0": [1], "2": [4]}, "attention": [1, 3], \#(experts)}"#)
        #expect(message.contains(file) && message.contains("router 2 serves rank 4, but it is the expert rank"), "\(message)")
        (message, file) = try Self.error(#"{"routers": {"0": [1], "2": [3]}, "attention": [1, 3, 6], "experts": {"4": "0-7", "5": "8-15"}}"#, np: 7)
        #expect(message.contains(file) && message.contains("attention rank 6 is served by no router") && message.contains("0,2"), "\(message)")
        (message, file) = try Self.error(#"{"routers": {}, \#(experts)}"#)
        #expect(message.contains(file) && message.contains("\"routers\" is empty"), "\(message)")
        (message, file) = try Self.error(#"{"routers": [0, 2], \#(experts)}"#)
        #expect(message.contains(file) && message.contains("routers should be an object of router rank → the attention ranks it serves"), "\(message)")
        // A router also listed as an expert rank is a rank placed twice.
        (message, file) = try Self.error(#"{"routers": {"0": [1], "4": [3]}, "experts": {"2": "0-7", "4": "8-15"}}"#, np: 5)
        #expect(message.contains("rank 4 is placed more than once (router and expert)"), "\(message)")
        (message, file) = try Self.error(#"{"attention": [1], \#(experts)}"#)
        #expect(message.contains("\"router\" is missing") && message.contains("\"routers\""), "\(message)")
    }

    @Test func startUpTableListsEachRouter() throws {
        let layout = try ClusterLayout(worldSize: 7, router: 0, routers: [0: [1], 2: [3, 4]], attentionRanks: [1, 3, 4],
                                       expertsByRank: [5: Array(0...7), 6: Array(8...15)])
        #expect(layout.table([:]) == """
            rank  host  role       experts  weights
               0  -     router     -              -
               1  -     attention  -              -
               2  -     router     -              -
               3  -     attention  -              -
               4  -     attention  -              -
               5  -     expert     0-7            -
               6  -     expert     8-15           -

            router     serves attention ranks
            0 (plans)  1
            2          3-4
            """)
    }
}

/// Two routers under real mpirun jobs (`fixture-6-two-routers.json`: routers 0 and 2 serving
/// attention ranks 1 and 3, experts on ranks 4 and 5): each router gates its own attention
/// rank's tokens, the expert ranks serve both routers in one exchange per layer, and the
/// results are the bits of one process.
@Suite(.serialized) struct TwoRouterRuns {
    static let layout = Conclave.packageRoot.appendingPathComponent("configs/layouts/fixture-6-two-routers.json")

    /// Per router: its attention ranks and, per MoE layer, (steps, tokens per step, dispatch and combine bytes per step).
    static func routers(_ url: URL) throws -> [Int: (attention: [Int], layers: [Int: [String: Double]])] {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let routers = try #require(json["routers"] as? [[String: Any]])
        var out: [Int: ([Int], [Int: [String: Double]])] = [:]
        for r in routers {
            let layers = try #require(r["layers"] as? [[String: Any]])
            out[try #require(r["rank"] as? Int)] = (try #require(r["attention_ranks"] as? [Int]), Dictionary(uniqueKeysWithValues: try layers.map {
                (try #require($0["layer"] as? Int), $0.compactMapValues { ($0 as? NSNumber)?.doubleValue })
            }))
        }
        return out
    }

    /// Logits at every prompt position equal one process's, bit for bit, with the prompt on
    /// router 0's attention rank (router 2 takes part in every exchange with no rows).
    @Test(.timeLimit(.minutes(2)))
    func logitsMatchOneProcess() throws {
        let cluster = try ClusterRun.expectLogitsMatchOneProcess("v3-bf16", ranks: 6, ["--layout", Self.layout.path]).cluster
        #expect(cluster.stderr.contains("router     serves attention ranks"), "no router table at start-up\n\(cluster.report)")
    }

    /// Several prompts spread over both attention ranks: greedy generation prints what one
    /// process prints, and the profile lists both routers, each with bytes in every MoE layer.
    @Test(.timeLimit(.minutes(2)))
    func greedyGenerationMatchesOneProcess() throws {
        let fixture = "v3-bf16"
        let directory = try ClusterRun.temporaryDirectory("two-routers")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (cluster, profile) = try ClusterRun.expectBatchedGenerationMatchesOneProcess(fixture, ranks: 6, layout: Self.layout, in: directory)

        let routers = try Self.routers(profile)
        #expect(routers.keys.sorted() == [0, 2])
        #expect(routers[0]?.attention == [1] && routers[2]?.attention == [3])
        for (rank, r) in routers {
            #expect(r.layers.keys.sorted() == [1, 2], "router \(rank): layers \(r.layers.keys.sorted())")
            for (layer, l) in r.layers {
                #expect((l["tokens_per_step"] ?? 0) > 0 && (l["dispatch_bytes_per_step"] ?? 0) > 0 && (l["combine_bytes_per_step"] ?? 0) > 0
                        && (l["bytes_per_token"] ?? 0) > 0, "router \(rank), layer \(layer): \(l)")
            }
        }
        // The per-layer tables count every router's tokens: each token picks top-k experts.
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: profile)) as? [String: Any])
        let layers = try #require(json["layers"] as? [[String: Any]])
        let topK = try ModelConfig(contentsOf: Conclave.fixture(fixture).appendingPathComponent("config.json")).numExpertsPerTok
        let perExpert = layers.compactMap { $0["tokens_per_expert"] as? [Int] }.map { $0.reduce(0, +) }
        let tokens = routers.values.map { r in (r.layers[1]?["tokens_per_step"] ?? 0) * (r.layers[1]?["steps"] ?? 0) }.reduce(0, +)
        #expect(perExpert.count == 2 && perExpert.allSatisfy { Double($0) == tokens * Double(topK) },
                "tokens per expert \(perExpert), tokens \(tokens)")
        #expect(cluster.stderr.contains("# routers, per MoE layer and step"), "\(cluster.report)")
    }

    /// Rank 0 gates only its own attention ranks' tokens: recording expert load with two
    /// routers would write a partial count, so the job refuses it, naming why.
    @Test(.timeLimit(.minutes(1)))
    func expertLoadRecordingRefusesSeveralRouters() throws {
        let directory = try ClusterRun.temporaryDirectory("two-routers-load")
        defer { try? FileManager.default.removeItem(at: directory) }
        let load = directory.appendingPathComponent("load.json")
        let cluster = try Conclave.mpi(ranks: 6, ["generate", "--model", Conclave.fixture("v3-bf16").path, "--tokens", "0,5,6",
                                                  "--max-tokens", "2", "--layout", Self.layout.path, "--record-expert-load", load.path])
        #expect(!cluster.succeeded, "\(cluster.report)")
        #expect(cluster.stderr.contains("--record-expert-load") && cluster.stderr.contains("2 routers"), "\(cluster.report)")
        #expect(!FileManager.default.fileExists(atPath: load.path))
    }
}
