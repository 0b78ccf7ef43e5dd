import Cluster
import Foundation
import Testing

/// Writes `json` to a fresh temporary layout file (also used by `MultiRouterTests`).
func layoutFile(_ json: String, name: String = "layout") throws -> URL {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("cluster-layout-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let url = directory.appendingPathComponent("\(name).json")
    try Data(json.utf8).write(to: url)
    return url
}

/// The error `body` throws, or a test failure when it does not throw.
func layoutError(_ body: () throws(LayoutError) -> ClusterLayout,
                         sourceLocation: SourceLocation = #_sourceLocation) -> LayoutError? {
    do {
        let layout = try body()
        Issue.record("expected a LayoutError, got \(layout)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// Asserts the message is one line and contains every word.
private func expectMessage(_ error: LayoutError?, contains words: [String],
                           sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error else { return }
    let message = error.description
    #expect(!message.contains("\n"), "message spans lines: \(message)", sourceLocation: sourceLocation)
    for word in words {
        #expect(message.contains(word), "\"\(word)\" missing from: \(message)", sourceLocation: sourceLocation)
    }
}

@Suite struct DefaultLayout {
    /// -np → (attention ranks, experts per expert rank) for 16 routed experts.
    static let expected: [Int: (attention: Int, shares: [Int])] = [
        3: (1, [16]),
        4: (1, [8, 8]),
        5: (1, [6, 5, 5]),
        6: (1, [4, 4, 4, 4]),
        7: (2, [4, 4, 4, 4]),
        8: (2, [4, 3, 3, 3, 3]),
        9: (2, [3, 3, 3, 3, 2, 2]),
    ]

    @Test(arguments: 3...9)
    func rolesAndContiguousSplit(worldSize: Int) throws {
        let layout = try ClusterLayout.derived(worldSize: worldSize, routedExperts: 16)
        let (attention, shares) = try #require(Self.expected[worldSize])
        #expect(layout.worldSize == worldSize)
        #expect(layout.router == 0)
        #expect(layout.role(of: 0) == .router)
        #expect(layout.attentionRanks == Array(1...attention))
        #expect(layout.expertRanks == Array((attention + 1)..<worldSize))
        for rank in layout.attentionRanks {
            #expect(layout.role(of: rank) == .attention)
            #expect(layout.experts(heldBy: rank).isEmpty)
        }
        #expect(layout.experts(heldBy: 0).isEmpty)

        // Contiguous blocks in rank order, the first ranks one larger when uneven.
        var next = 0
        for (rank, share) in zip(layout.expertRanks, shares) {
            #expect(layout.role(of: rank) == .expert)
            #expect(layout.experts(heldBy: rank) == Array(next..<(next + share)))
            for expert in next..<(next + share) { #expect(layout.expertRank(holding: expert) == rank) }
            next += share
        }
        #expect(next == 16)
    }

    @Test func attentionRanksOverride() throws {
        let layout = try ClusterLayout.derived(worldSize: 6, routedExperts: 10, attentionRanks: 3)
        #expect(layout.attentionRanks == [1, 2, 3])
        #expect(layout.expertsByRank == [4: Array(0..<5), 5: Array(5..<10)])
    }

    @Test func defaultAttentionGrowsWithWorldSize() {
        #expect((3...14).map { ClusterLayout.defaultAttentionRanks(worldSize: $0) }
                == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])
    }

    @Test func tooFewRanks() {
        let error = layoutError { () throws(LayoutError) in try ClusterLayout.derived(worldSize: 2, routedExperts: 16) }
        #expect(error == .tooFewRanks(worldSize: 2, source: "default layout"))
        expectMessage(error, contains: ["needs at least 3 ranks: a router, an attention rank and an expert rank; got -np 2"])
    }

    @Test func attentionRanksThatLeaveNoExpertRank() {
        expectMessage(layoutError { () throws(LayoutError) in try ClusterLayout.derived(worldSize: 4, routedExperts: 16, attentionRanks: 3) },
                      contains: ["--attention-ranks 3", "-np 4", "1 to 2"])
        expectMessage(layoutError { () throws(LayoutError) in try ClusterLayout.derived(worldSize: 4, routedExperts: 16, attentionRanks: 0) },
                      contains: ["--attention-ranks 0", "-np 4"])
    }

    @Test func moreExpertRanksThanExperts() {
        let error = layoutError { () throws(LayoutError) in try ClusterLayout.derived(worldSize: 8, routedExperts: 4) }
        // -np 8: 2 attention ranks, 5 expert ranks for 4 experts.
        expectMessage(error, contains: ["-np 8", "5 expert ranks", "4 routed experts", "-np 7", "--attention-ranks 3", "--layout"])
    }

    @Test func modelWithoutRoutedExperts() {
        expectMessage(layoutError { () throws(LayoutError) in try ClusterLayout.derived(worldSize: 4, routedExperts: 0) },
                      contains: ["n_routed_experts = 0"])
    }
}

@Suite struct LayoutFiles {
    @Test func rangesListsAndUnevenSplits() throws {
        let url = try layoutFile("""
            {"router": 0, "attention": [1], "experts": {"2": "0-7", "3": [8, 9, 10, "11-15"]}}
            """)
        let layout = try ClusterLayout.load(url, worldSize: 4, routedExperts: 16)
        #expect(layout.attentionRanks == [1])
        #expect(layout.expertRanks == [2, 3])
        #expect(layout.expertsByRank == [2: Array(0...7), 3: Array(8...15)])
        #expect(layout == (try ClusterLayout.derived(worldSize: 4, routedExperts: 16)))

        let uneven = try layoutFile("""
            {"router": 0, "attention": [2, 1], "experts": {"4": "4-15", "3": " 3 , 0-2 "}}
            """)
        let layout2 = try ClusterLayout.load(uneven, worldSize: 5, routedExperts: 16)
        #expect(layout2.attentionRanks == [1, 2])
        #expect(layout2.experts(heldBy: 3) == [0, 1, 2, 3])
        #expect(layout2.experts(heldBy: 4) == Array(4...15))
        #expect(layout2.expertRank(holding: 3) == 3)
        #expect(layout2.expertRank(holding: 4) == 4)
        #expect(layout2.role(of: 2) == .attention)
    }

    @Test func numbersAndStringsAsIdLists() throws {
        let url = try layoutFile("""
            {"router": 0, "attention": "1", "experts": {"2": 0, "3": "1,2-3"}}
            """)
        let layout = try ClusterLayout.load(url, worldSize: 4, routedExperts: 4)
        #expect(layout.attentionRanks == [1])
        #expect(layout.experts(heldBy: 2) == [0])
        #expect(layout.experts(heldBy: 3) == [1, 2, 3])
        #expect(try ClusterLayout.worldSize(of: url) == 4)
    }

    @Test func publicInitValidates() throws {
        let layout = try ClusterLayout(worldSize: 3, router: 0, attentionRanks: [1], expertsByRank: [2: [2, 0, 1]])
        #expect(layout.routedExperts == 3)
        #expect(layout.experts(heldBy: 2) == [0, 1, 2])
        let error = layoutError { () throws(LayoutError) in
            try ClusterLayout(worldSize: 3, router: 0, attentionRanks: [1], expertsByRank: [2: [0, 2]])
        }
        #expect(error == .expertsUnheld([1], routedExperts: 3, source: "layout"))
    }

    /// Every validation failure: the file, and the rank/expert/-np involved, are in the one-line message.
    @Test func validationMessages() throws {
        func failure(_ json: String, np: Int = 4, experts: Int = 16,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> (LayoutError?, String) {
            let url = try layoutFile(json, name: "bad-layout")
            return (layoutError({ () throws(LayoutError) in try ClusterLayout.load(url, worldSize: np, routedExperts: experts) },
                                sourceLocation: sourceLocation), url.path)
        }
        let good = #"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "8-15"}}"#

        var (error, file) = try failure(good, np: 2)
        expectMessage(error, contains: [file, "needs at least 3 ranks: a router, an attention rank and an expert rank; got -np 2"])

        // Ranks not exactly 0..<np.
        (error, file) = try failure(good, np: 5)
        expectMessage(error, contains: [file, "-np 5", "rank 4 is missing", "run with -np 4"])
        (error, file) = try failure(good, np: 3)
        expectMessage(error, contains: [file, "-np 3", "rank 3 is out of range", "0-2", "run with -np 4"])
        (error, file) = try failure(#"{"router": 0, "attention": [1, 2], "experts": {"2": "0-7", "3": "8-15"}}"#)
        expectMessage(error, contains: [file, "-np 4", "rank 2 is placed more than once (attention and expert)"])
        #expect(!(error?.description.contains("run with") ?? true))
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "5": "8-15"}}"#, np: 6)
        expectMessage(error, contains: [file, "-np 6", "ranks 3-4 are missing"])
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "02": "8-15"}}"#)
        expectMessage(error, contains: [file, "experts entry \"2\"", "rank 2 is already listed as \"02\""])

        (error, file) = try failure(#"{"router": 2, "attention": [1], "experts": {"0": "0-7", "3": "8-15"}}"#)
        expectMessage(error, contains: [file, "router is rank 2", "must be rank 0"])

        // Missing roles.
        (error, file) = try failure(#"{"router": 0, "attention": [], "experts": {"1": "0-7", "2": "8-15"}}"#, np: 3)
        expectMessage(error, contains: [file, "no attention rank"])
        (error, file) = try failure(#"{"router": 0, "attention": [1, 2], "experts": {}}"#, np: 3)
        expectMessage(error, contains: [file, "no expert rank"])

        // Experts.
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "8-16"}}"#)
        expectMessage(error, contains: [file, "rank 3", "expert 16", "0-15", "n_routed_experts = 16"])
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7,7", "3": "8-15"}}"#)
        #expect(error == .expertListedTwice(expert: 7, rank: 2, source: file))
        expectMessage(error, contains: [file, "expert 7 is listed twice for rank 2"])
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "8-11,13"}}"#)
        expectMessage(error, contains: [file, "experts 12,14-15 are held by no rank", "n_routed_experts = 16"])
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-15", "3": []}}"#)
        expectMessage(error, contains: [file, "expert rank 3 holds no experts"])

        // Syntax.
        (error, file) = try failure(#"{"router": 0, "atention": [1], "experts": {"2": "0-7", "3": "8-15"}, "extra": 1}"#)
        expectMessage(error, contains: [file, "unknown keys \"atention\", \"extra\"", "\"layers\""])
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "8-15"#)
        expectMessage(error, contains: [file, "not valid JSON"])
        (error, file) = try failure(#"[0, 1, 2]"#)
        expectMessage(error, contains: [file, "JSON object"])
        (error, file) = try failure(#"{"router": "0", "attention": [1], "experts": {"2": "0-7", "3": "8-15"}}"#)
        expectMessage(error, contains: [file, "router", "rank number"])
        (error, file) = try failure(#"{"attention": [1], "experts": {"2": "0-7", "3": "8-15"}}"#)
        expectMessage(error, contains: [file, "\"router\" is missing"])
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "15-8"}}"#)
        expectMessage(error, contains: [file, "\"15-8\"", "a ≤ b"])
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "8-15", "x": 1}}"#)
        expectMessage(error, contains: [file, "\"x\"", "rank numbers"])
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": ["8-15", 2.5]}}"#)
        expectMessage(error, contains: [file, "experts.\"3\"", "2.5"])
        (error, file) = try failure(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "eight"}}"#)
        expectMessage(error, contains: [file, "\"eight\"", "\"0-7\""])

        let missing = URL(fileURLWithPath: "/nonexistent/layout.json")
        expectMessage(layoutError { () throws(LayoutError) in try ClusterLayout.load(missing, worldSize: 4, routedExperts: 16) },
                      contains: ["cannot read layout file /nonexistent/layout.json"])
    }

    /// The directory of the repository's layout files.
    static var layoutsDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("configs/layouts")
    }

    /// Routed experts of the model each file is written for, by file-name prefix.
    static let routedExperts = ["tiny": 16, "fixture": 16]

    @Test func everyRepositoryLayoutLoads() throws {
        let files = try FileManager.default.contentsOfDirectory(at: Self.layoutsDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }
        #expect(files.count >= 3)
        for url in files {
            let prefix = String(url.lastPathComponent.prefix { $0 != "-" })
            let experts = try #require(Self.routedExperts[prefix],
                                       "\(url.lastPathComponent): add its model's n_routed_experts to LayoutFiles.routedExperts")
            let worldSize = try ClusterLayout.worldSize(of: url)
            let layout = try ClusterLayout.load(url, worldSize: worldSize, routedExperts: experts)
            #expect(layout.worldSize == worldSize)
            // The file's -np is the only one it runs with.
            let wrong = layoutError { () throws(LayoutError) in
                try ClusterLayout.load(url, worldSize: worldSize + 1, routedExperts: experts)
            }
            expectMessage(wrong, contains: [url.path, "-np \(worldSize + 1)", "run with -np \(worldSize)"])
        }
    }

    @Test func namedLayouts() throws {
        let tiny4 = try ClusterLayout.load(Self.layoutsDirectory.appendingPathComponent("tiny-4.json"), worldSize: 4, routedExperts: 16)
        #expect(tiny4 == (try ClusterLayout.derived(worldSize: 4, routedExperts: 16)))
        let tiny5 = try ClusterLayout.load(Self.layoutsDirectory.appendingPathComponent("tiny-5-uneven.json"), worldSize: 5, routedExperts: 16)
        #expect(tiny5.attentionRanks == [1, 2])
        #expect(tiny5.expertsByRank == [3: Array(0...3), 4: Array(4...15)])
        let fixture = try ClusterLayout.load(Self.layoutsDirectory.appendingPathComponent("fixture-5-uneven.json"), worldSize: 5, routedExperts: 16)
        #expect(fixture.attentionRanks == [1])
        #expect(fixture.expertsByRank == [2: [0, 1], 3: Array(2...9), 4: Array(10...15)])
    }
}

@Suite struct StartupTable {
    @Test func table() throws {
        let layout = try ClusterLayout(worldSize: 5, router: 0, attentionRanks: [1],
                                       expertsByRank: [2: [0, 1, 2, 3, 12], 3: [4, 5, 6, 7, 13, 14, 15], 4: [8, 9, 10, 11]])
        // node-a's two ranks share one directory; node-b's have one each (counted once per directory).
        let text = layout.table([
            0: RankFootprint(host: "node-a", residentBytes: 1_000, modelDirectory: "/m/a", diskBytes: 20 << 20),
            1: RankFootprint(host: "node-a", residentBytes: 13_002_342, modelDirectory: "/m/a", diskBytes: 20 << 20),
            2: RankFootprint(host: "node-b", residentBytes: 5 * 1024 * 1024, modelDirectory: "/m/b2", diskBytes: 6 << 20),
            3: RankFootprint(host: "node-b", residentBytes: 3 << 30, modelDirectory: "/m/b3", diskBytes: 3 << 30),
        ])
        #expect(text == """
            rank  host    role       experts     weights
               0  node-a  router     -            1000 B
               1  node-a  attention  -          12.4 MiB
               2  node-b  expert     0-3,12      5.0 MiB
               3  node-b  expert     4-7,13-15   3.0 GiB
               4  -       expert     8-11              -

            host    ranks   weights   on disk
            node-a  0-1    12.4 MiB  20.0 MiB
            node-b  2-3     3.0 GiB   3.0 GiB
            """)
    }

    @Test func rangesAndBytes() {
        #expect(ClusterLayout.ranges([]) == "")
        #expect(ClusterLayout.ranges([5]) == "5")
        #expect(ClusterLayout.ranges([15, 0, 1, 2, 3, 12, 14]) == "0-3,12,14-15")
        #expect(ClusterLayout.bytes(0) == "0 B")
        #expect(ClusterLayout.bytes(1023) == "1023 B")
        #expect(ClusterLayout.bytes(1024) == "1.0 KiB")
        #expect(ClusterLayout.bytes(1024 * 1024 - 1) == "1.0 MiB")
        #expect(ClusterLayout.bytes(13_002_342) == "12.4 MiB")
        #expect(ClusterLayout.bytes(671 << 30) == "671.0 GiB")
    }
}

/// Replicas (an expert on several expert ranks) and per-MoE-layer placements (`layers`).
@Suite struct ReplicatedAndPerLayerLayouts {
    /// An expert on two ranks is two replicas; the existing API answers as before for the
    /// unreplicated experts and with the lowest rank for the replicated ones.
    @Test func replicasInTheDefaultPlacement() throws {
        let url = try layoutFile(#"{"router": 0, "attention": [1], "experts": {"2": "0-9", "3": "6-15"}}"#)
        let layout = try ClusterLayout.load(url, worldSize: 4, routedExperts: 16, moeLayers: [1, 2])
        #expect(layout.isReplicatedOrPerLayer)
        #expect(layout.experts(heldBy: 2) == Array(0...9) && layout.experts(heldBy: 3) == Array(6...15))
        for layer in [1, 2] {
            #expect(layout.replicas(of: 7, layer: layer) == [2, 3])
            #expect(layout.replicas(of: 0, layer: layer) == [2] && layout.replicas(of: 15, layer: layer) == [3])
            #expect(layout.replicas(layer: layer).map(\.count) == Array(repeating: 1, count: 6) + [2, 2, 2, 2] + Array(repeating: 1, count: 6))
            #expect(layout.placement(layer: layer) == [2: Array(0...9), 3: Array(6...15)])
        }
        #expect(layout.expertRank(holding: 7) == 2 && layout.expertRank(holding: 12) == 3)
    }

    /// Unreplicated layouts keep their answers, and the per-layer API agrees with them.
    @Test func unreplicatedLayoutsAnswerAsBefore() throws {
        let layout = try ClusterLayout.derived(worldSize: 5, routedExperts: 16)
        #expect(!layout.isReplicatedOrPerLayer)
        for expert in 0..<16 { #expect(layout.replicas(of: expert, layer: 3) == [layout.expertRank(holding: expert)]) }
        for rank in layout.expertRanks { #expect(layout.experts(heldBy: rank, layer: 1) == layout.experts(heldBy: rank)) }
        #expect(layout.experts(heldBy: 1, layer: 1).isEmpty)
    }

    /// Each MoE layer may place experts its own way; layers without a placement use the
    /// default one; a rank left out of a layer holds nothing there. What a rank holds overall
    /// is what it holds in some MoE layer.
    @Test func perLayerPlacements() throws {
        let url = try layoutFile("""
            {"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "8-15", "4": "0-15"},
             "layers": {"1": {"2": "0-3,8", "3": "4-15"}, " 2 ": {"2": "0-15", "3": "0-3", "4": [4, 5, "6-15"]}}}
            """)
        let layout = try ClusterLayout.load(url, worldSize: 5, routedExperts: 16, moeLayers: [1, 2])
        #expect(layout.isReplicatedOrPerLayer)
        #expect(layout.layers.keys.sorted() == [1, 2])
        #expect(layout.placement(layer: 1) == [2: [0, 1, 2, 3, 8], 3: Array(4...15)])
        #expect(layout.experts(heldBy: 4, layer: 1).isEmpty)
        #expect(layout.replicas(of: 8, layer: 1) == [2, 3] && layout.replicas(of: 9, layer: 1) == [3])
        #expect(layout.replicas(of: 2, layer: 2) == [2, 3] && layout.replicas(of: 9, layer: 2) == [2, 4])
        // Layer 3 is not placed on its own: the default placement.
        #expect(layout.replicas(of: 9, layer: 3) == [3, 4])
        // Both MoE layers have their own placement: the default one is not used.
        #expect(layout.experts(heldBy: 2) == Array(0...15) && layout.experts(heldBy: 4) == Array(4...15))
        let unknownLayers = try ClusterLayout.load(url, worldSize: 5, routedExperts: 16)
        #expect(unknownLayers.experts(heldBy: 4) == Array(0...15), "unknown MoE layers: the default placement counts")
        #expect(layout.expertRanks == [2, 3, 4] && layout.attentionRanks == [1])
    }

    /// Each mistake in a per-layer placement is one line naming the file, the layer, and the rank or experts.
    @Test func perLayerValidationMessages() throws {
        func failure(_ layers: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> (LayoutError?, String) {
            let url = try layoutFile(#"{"router": 0, "attention": [1], "experts": {"2": "0-7", "3": "8-15"}, "layers": "# + layers + "}",
                                     name: "bad-layers")
            return (layoutError({ () throws(LayoutError) in try ClusterLayout.load(url, worldSize: 4, routedExperts: 16, moeLayers: [1, 2]) },
                                sourceLocation: sourceLocation), url.path)
        }
        var (error, file) = try failure(#"{"0": {"2": "0-15"}}"#)
        #expect(error == .layerNotMoE(layer: 0, moeLayers: [1, 2], source: file))
        expectMessage(error, contains: [file, "layers.\"0\"", "layer 0, which is not a MoE layer", "1-2"])
        (error, file) = try failure(#"{"2": {"2": "0-15", "1": "0-3"}}"#)
        expectMessage(error, contains: [file, "MoE layer 2", "rank 1", "the attention rank", "(2-3)"])
        (error, file) = try failure(#"{"2": {"2": "0-15", "7": "0-3"}}"#)
        expectMessage(error, contains: [file, "MoE layer 2", "rank 7", "not a rank of this layout"])
        (error, file) = try failure(#"{"1": {"2": "0-7", "3": "8-16"}}"#)
        #expect(error == .expertOutOfRange(expert: 16, rank: 3, routedExperts: 16, source: file, layer: 1))
        expectMessage(error, contains: [file, "MoE layer 1", "rank 3 holds expert 16", "n_routed_experts = 16"])
        (error, file) = try failure(#"{"1": {"2": "0-7", "3": "8-15,9"}}"#)
        expectMessage(error, contains: [file, "MoE layer 1", "expert 9 is listed twice for rank 3"])
        (error, file) = try failure(#"{"1": {"2": "0-7"}, "2": {"2": "0-7", "3": "8-14"}}"#)
        #expect(error == .expertsUnheld(Array(8...15), routedExperts: 16, source: file, layer: 1))
        expectMessage(error, contains: [file, "MoE layer 1", "experts 8-15 are held by no rank", "layers.\"1\""])
        (error, file) = try failure(#"{"2": {"2": "0-15", "3": []}}"#)
        expectMessage(error, contains: [file, "MoE layer 2", "expert rank 3 is given no experts"])
        (error, file) = try failure(#"{"x": {"2": "0-15"}}"#)
        expectMessage(error, contains: [file, "layers entry \"x\"", "MoE layer numbers"])
        (error, file) = try failure(#"{"1": {"2": "0-15"}, "01": {"3": "0-15"}}"#)
        expectMessage(error, contains: [file, "layers entry \"1\"", "layer 1 is already listed as \"01\""])
        (error, file) = try failure(#"[1, 2]"#)
        expectMessage(error, contains: [file, "layers should be an object", "a list"])
        (error, file) = try failure(#"{"1": "0-15"}"#)
        expectMessage(error, contains: [file, "layers.\"1\" should be an object of rank → expert ids"])
        (error, file) = try failure(#"{"1": {"2": "0-15", "3": "x"}}"#)
        expectMessage(error, contains: [file, "layers.\"1\".\"3\"", "\"x\""])
    }

    /// The start-up table of a layout with replicas or per-layer placements lists the experts
    /// each expert rank holds per MoE layer, layers placed alike on one row.
    @Test func startUpTableShowsPlacementsPerLayer() throws {
        let layout = try ClusterLayout(worldSize: 4, router: 0, attentionRanks: [1], expertsByRank: [2: Array(0...9), 3: Array(6...15)],
                                       layers: [2: [2: [0, 1, 2, 3], 3: Array(4...15)]], routedExperts: 16, moeLayers: [1, 2, 3])
        #expect(layout.table([:]) == """
            rank  host  role       experts  weights
               0  -     router     -              -
               1  -     attention  -              -
               2  -     expert     0-9            -
               3  -     expert     4-15           -

            MoE layers  rank 2  rank 3
            1,3         0-9     6-15
            2           0-3     4-15
            """)
    }
}

