import Foundation
import TestSupport
import Testing

/// `--record-expert-load` on `generate`: in one process the local gates count, under mpirun the
/// router; both must count exactly the routing `conclave logits --routing-layer` shows for the
/// same tokens.
@Suite(.serialized) struct ExpertLoadRecording {
    struct Record {
        let fingerprint: String
        let routedExperts: Int
        let topK: Int
        let steps: Int
        let tokens: Int
        let start: String
        let end: String
        /// MoE layer → counts by expert id.
        let layers: [Int: [Int]]
    }

    static func read(_ url: URL, sourceLocation: SourceLocation = #_sourceLocation) throws -> Record {
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any],
                                "\(url.path) is not a JSON object", sourceLocation: sourceLocation)
        let window = try #require(root["window"] as? [String: Any], sourceLocation: sourceLocation)
        let layers = try #require(root["layers"] as? [[String: Any]], sourceLocation: sourceLocation)
        var counts: [Int: [Int]] = [:]
        for l in layers {
            counts[try #require(l["layer"] as? Int, sourceLocation: sourceLocation)] =
                try #require(l["tokens_per_expert"] as? [Int], sourceLocation: sourceLocation)
        }
        #expect(root["format"] as? String == "conclave-expert-load/1", sourceLocation: sourceLocation)
        return Record(fingerprint: try #require(root["model_fingerprint"] as? String, sourceLocation: sourceLocation),
                      routedExperts: try #require(root["n_routed_experts"] as? Int, sourceLocation: sourceLocation),
                      topK: try #require(root["num_experts_per_tok"] as? Int, sourceLocation: sourceLocation),
                      steps: try #require(window["steps"] as? Int, sourceLocation: sourceLocation),
                      tokens: try #require(window["tokens"] as? Int, sourceLocation: sourceLocation),
                      start: try #require(window["start"] as? String, sourceLocation: sourceLocation),
                      end: try #require(window["end"] as? String, sourceLocation: sourceLocation),
                      layers: counts)
    }

    /// The routing `conclave logits --routing-layer layer` prints for `tokens`, as counts by expert id.
    static func logitsRoutingCounts(model: String, tokens: [Int], layer: Int, experts: Int) throws -> [Int] {
        let run = try Conclave.local(["logits", "--model", model, "--tokens", tokens.map(String.init).joined(separator: ","),
                                      "--routing-layer", "\(layer)"])
        try #require(run.succeeded, "logits failed\n\(run.report)")
        let routing = try ClusterRun.parseLogits(run).routing
        #expect(routing.count == tokens.count)
        var counts = [Int](repeating: 0, count: experts)
        for position in routing { for e in position { counts[e] += 1 } }
        return counts
    }

    /// A 4-token greedy generation on the two-MoE-layer bf16 fixture, in one process and on 4
    /// ranks: each file's counts sum to tokens × top-k per layer (prompt + the 3 tokens fed back,
    /// over 4 steps) and equal the routing `logits` prints for those tokens, layer by layer; the
    /// cluster's file holds the same counts and fingerprint as the single process's.
    @Test(.timeLimit(.minutes(2)))
    func generateRecordsTheGatesRouting() throws {
        let fixture = "v3-bf16"
        let model = Conclave.fixture(fixture).path
        let reference = try ClusterRun.reference(fixture)
        let directory = try ClusterRun.temporaryDirectory("expert-load")
        defer { try? FileManager.default.removeItem(at: directory) }
        let single = directory.appendingPathComponent("single.json"), cluster = directory.appendingPathComponent("cluster.json")
        let command = ["generate", "--model", model, "--tokens", reference.prompt.map(String.init).joined(separator: ","),
                       "--max-tokens", "4", "--ignore-eos", "--json"]

        let one = try Conclave.local(command + ["--record-expert-load", single.path])
        try #require(one.succeeded, "single-process run failed\n\(one.report)")
        let many = try Conclave.mpi(ranks: 4, command + ["--record-expert-load", cluster.path])
        try #require(many.succeeded, "cluster run failed\n\(many.report)")
        #expect(many.stdoutLines == one.stdoutLines)

        let generated = try #require(try ClusterRun.generatedTokens(one).first)
        try #require(generated.count == 4, "expected 4 generated tokens: \(generated)")
        let tokens = reference.prompt + generated.dropLast()
        let a = try Self.read(single), b = try Self.read(cluster)
        try #require(a.routedExperts == 16 && a.topK == 4)
        #expect(a.layers.keys.sorted() == [1, 2], "the fixture's MoE layers are 1 and 2")
        for record in [a, b] {
            #expect(record.steps == 4 && record.tokens == tokens.count, "steps \(record.steps), tokens \(record.tokens)")
            #expect(!record.fingerprint.isEmpty && record.start <= record.end && record.start.hasSuffix("Z"))
        }
        for layer in [1, 2] {
            let counts = try #require(a.layers[layer])
            #expect(counts.reduce(0, +) == tokens.count * a.topK, "layer \(layer): \(counts)")
            let expected = try Self.logitsRoutingCounts(model: model, tokens: tokens, layer: layer, experts: a.routedExperts)
            #expect(counts == expected, "layer \(layer): recorded \(counts), logits routing \(expected)")
            #expect(b.layers[layer] == counts, "layer \(layer): cluster \(b.layers[layer] ?? []) vs one process \(counts)")
        }
        #expect(a.fingerprint == b.fingerprint)
    }
}
