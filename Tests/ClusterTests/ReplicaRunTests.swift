import Foundation
import TestSupport
import Testing

/// Layouts with replicas and per-layer placements under real mpirun jobs: the router splits a
/// replicated expert's tokens among its replicas and puts every output back in its top-k slot,
/// so the logits are the bits of one process; the profile shows the replicas' rows evened out.
@Suite(.serialized) struct ReplicaRuns {
    struct LayoutCase: CustomTestStringConvertible, Sendable {
        let fixture: String
        let layout: String
        var testDescription: String { "\(fixture) with \(layout)" }
    }

    static let layoutCases = [
        LayoutCase(fixture: "v3-bf16", layout: "fixture-5-replicated.json"),
        LayoutCase(fixture: "v3-bf16", layout: "fixture-5-per-layer.json"),
        LayoutCase(fixture: "v3-fp8-release", layout: "fixture-5-per-layer.json"),
    ]

    static func layoutFile(_ name: String) -> URL {
        Conclave.packageRoot.appendingPathComponent("configs/layouts/\(name)")
    }

    /// Per MoE layer: steps and rows per expert rank, from a `--profile-out` file.
    static func profileRows(_ url: URL, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Int: (steps: Int, rows: [Int: Int])] {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], sourceLocation: sourceLocation)
        let layers = try #require(json["layers"] as? [[String: Any]], sourceLocation: sourceLocation)
        var out: [Int: (Int, [Int: Int])] = [:]
        for l in layers {
            let rows = try #require(l["rows_per_expert_rank"] as? [String: Int], sourceLocation: sourceLocation)
            out[try #require(l["layer"] as? Int, sourceLocation: sourceLocation)] =
                (try #require(l["steps"] as? Int, sourceLocation: sourceLocation),
                 Dictionary(uniqueKeysWithValues: rows.map { (Int($0.key)!, $0.value) }))
        }
        return out
    }

    /// Logits at every prompt position are the same bits as one process's, and so is the
    /// routing; every expert rank served rows in every MoE layer.
    @Test(.timeLimit(.minutes(2)), arguments: layoutCases)
    func logitsMatchOneProcess(_ c: LayoutCase) throws {
        let directory = try ClusterRun.temporaryDirectory("replicas")
        defer { try? FileManager.default.removeItem(at: directory) }
        let profile = directory.appendingPathComponent("profile.json")
        let cluster = try ClusterRun.expectLogitsMatchOneProcess(c.fixture, ranks: 5,
                                                                 ["--layout", Self.layoutFile(c.layout).path, "--profile-out", profile.path]).cluster
        #expect(cluster.stderr.contains("MoE layers  rank 2"), "the start-up table does not list the placements\n\(cluster.report)")
        let layers = try Self.profileRows(profile)
        #expect(layers.keys.sorted() == [1, 2])
        for (layer, l) in layers {
            #expect(l.rows.keys.sorted() == [2, 3, 4] && l.rows.values.allSatisfy { $0 > 0 }, "layer \(layer): rows \(l.rows)")
        }
    }

    /// Every expert on both expert ranks: each step's tokens alternate between the replicas,
    /// so the ranks' rows differ by at most one per step (the unreplicated layout's need not),
    /// a batched generation prints what one process prints, and each expert rank holds every
    /// expert's weights.
    @Test(.timeLimit(.minutes(2)))
    func replicasRowsEvenOut() throws {
        let fixture = "v3-bf16"
        let directory = try ClusterRun.temporaryDirectory("replicas-even")
        defer { try? FileManager.default.removeItem(at: directory) }
        let layout = directory.appendingPathComponent("fixture-4-replicated.json")
        try Data(#"{"router": 0, "attention": [1], "experts": {"2": "0-15", "3": "0-15"}}"#.utf8).write(to: layout)
        let profile = try ClusterRun.expectBatchedGenerationMatchesOneProcess(fixture, ranks: 4, layout: layout, in: directory).profile

        let layers = try Self.profileRows(profile)
        #expect(layers.keys.sorted() == [1, 2])
        for (layer, l) in layers {
            let r2 = l.rows[2] ?? 0, r3 = l.rows[3] ?? 0
            #expect(r2 > 0 && r3 > 0 && abs(r2 - r3) <= l.steps, "layer \(layer): rows r2 \(r2), r3 \(r3) over \(l.steps) steps")
        }
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: profile)) as? [String: Any])
        let ranks = try #require(json["ranks"] as? [[String: Any]])
        let expertRanks = ranks.filter { $0["role"] as? String == "expert" }
        #expect(expertRanks.compactMap { $0["experts"] as? [Int] } == [Array(0..<16), Array(0..<16)])
        let bytes = expertRanks.compactMap { $0["resident_weight_bytes"] as? Int }
        #expect(bytes.count == 2 && bytes[0] == bytes[1] && bytes[0] > 0, "\(bytes)")
    }

    /// Recorded load → `plan-placement` → a cluster on the planned layout: the layout file runs
    /// with the rank count it names, prints one process's logits bit for bit, and the plan's
    /// table lists each MoE layer's balancedness before and after.
    @Test(.timeLimit(.minutes(2)))
    func plannedLayoutFromRecordedLoadRuns() throws {
        let fixture = "v3-bf16"
        let model = Conclave.fixture(fixture).path
        let reference = try ClusterRun.reference(fixture)
        let directory = try ClusterRun.temporaryDirectory("planned")
        defer { try? FileManager.default.removeItem(at: directory) }
        let load = directory.appendingPathComponent("load.json"), layout = directory.appendingPathComponent("planned.json")
        let prompt = reference.prompt.map(String.init).joined(separator: ",")
        let recorded = try Conclave.local(["generate", "--model", model, "--tokens", prompt, "--max-tokens", "8", "--ignore-eos",
                                           "--record-expert-load", load.path])
        try #require(recorded.succeeded, "recording failed\n\(recorded.report)")
        let plan = try Conclave.local(["plan-placement", "--load", load.path, "--expert-ranks", "3", "--redundant", "2", "--out", layout.path])
        try #require(plan.succeeded, "plan-placement failed\n\(plan.report)")
        let rows = plan.stdoutLines.filter { $0.hasPrefix("1 ") || $0.hasPrefix("2 ") }
        #expect(rows.count == 2, "one row per MoE layer\n\(plan.report)")
        for row in rows {
            let fields = row.split(separator: " ")
            let before = try #require(Double(fields[1])), after = try #require(Double(fields[2]))
            #expect(after >= before && after <= 1, "\(row)")
        }
        #expect(plan.stderr.contains("-np 5"), "\(plan.report)")

        try ClusterRun.expectLogitsMatchOneProcess(fixture, ranks: 5, ["--layout", layout.path])
    }
}
