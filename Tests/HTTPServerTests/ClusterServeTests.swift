import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `conclave serve` under `mpirun -np 4 --oversubscribe --bind-to none` (router with HTTP,
/// one attention rank, two expert ranks) answers like the one-process server and drains on
/// SIGTERM.
///
/// Which process gets the signal (measured with Open MPI 4.1): SIGTERM to mpirun does not
/// drain. mpirun takes it as "kill the job": every rank is gone within about a second, an open
/// stream breaks off without its finish chunk or `[DONE]`, and mpirun exits 1. SIGTERM to the
/// rank 0 process (the router, which serves HTTP) is the graceful path: it drains, shuts every
/// rank down, and mpirun exits 0. Process managers should signal rank 0; this test does.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ClusterServe {
    static let prompt = "The quick brown fox jumps over"

    @Test func clusterAnswersLikeOneProcessAndDrainsOnSIGTERM() async throws {
        let model = try Conclave.tinyModel()
        defer { try? FileManager.default.removeItem(at: model.deletingLastPathComponent()) }
        let completion = ["max_tokens": 24, "ignore_eos": true, "temperature": 0] as [String: Any]

        // The one-process server's answers.
        let (single, singleChat) = try await ServerProcess.run(model: model) { server in
            let api = TinyServer.connection(server, model)
            try await api.waitUntilReady()
            let single = try await api.post(.completions, api.request(.completions, prompt: Self.prompt, completion))
            let chat = try await api.post(.chat, api.request(.chat, prompt: Self.prompt, completion))
            try #require(single.status == 200 && chat.status == 200, "\(single)\n\(chat)")
            return (single, chat)
        }

        let load = model.deletingLastPathComponent().appendingPathComponent("load.json")
        try await ServerProcess.run(model: model, options: ["--drain-seconds", "1", "--record-expert-load", load.path], ranks: 4) { server in
            let api = TinyServer.connection(server, model)
            // 503 while the ranks load, then 200.
            try await api.waitUntilReady(timeout: 120)

            let reply = try await api.post(.completions, api.request(.completions, prompt: Self.prompt, completion))
            try #require(reply.status == 200, "\(reply)\n\(server.stderrText)")
            #expect(reply.json?["choices"]?[0]?["text"] == single.json?["choices"]?[0]?["text"],
                    "the cluster's greedy answer differs from one process's\n\(reply)\n\(single)")
            #expect(reply.json?["usage"] == single.json?["usage"], "\(reply)\n\(single)")
            // The router's per-layer figures: the tiny model's MoE layers are 1-3.
            let metrics = try await api.get("/metrics").text
            for layer in 1...3 {
                #expect(metrics.contains("conclave_moe_expert_balancedness{layer=\"\(layer)\"}"), "no balancedness gauge for layer \(layer)\n\(metrics)")
            }

            let chat = try await api.stream(.chat, api.request(.chat, prompt: Self.prompt,
                                                               completion.merging(["stream": true, "stream_options": ["include_usage": true]]) { $1 }))
            #expect(chat.status == 200 && chat.endsWithDoneOnce, "\(chat)")
            #expect(chat.finishReasons == ["length"], "\(chat)")
            #expect(chat.text == singleChat.json?["choices"]?[0].flatMap(Endpoint.chat.text(of:)),
                    "the cluster's streamed chat differs from one process's whole answer\n\(chat)\n\(singleChat)")
            #expect(chat.finalUsage == singleChat.json?["usage"], "\(chat)")

            // A stream longer than the one-second drain: cut with "abort", ended properly.
            var stream = try await api.open(.completions, api.request(.completions, prompt: Self.prompt, [
                "max_tokens": try Conclave.contextLength(of: model) - 16, "ignore_eos": true, "temperature": 0, "stream": true,
            ]))
            try #require(stream.status == 200)
            try #require(try await stream.next() != nil, "no first token")
            try server.sendToRankZero(SIGTERM)
            let answer = try await stream.readToEnd()
            #expect(answer.endsWithDoneOnce && answer.finishReasons == ["abort"], "\(answer)")
            let health = try? await api.get("/health")
            #expect(health == nil || health?.status == 503, "GET /health after the drain: \(health.map(\.description) ?? "")")

            let result = await server.finish(within: 30)
            #expect(result.termination == .exited(0) && !result.timedOut, "mpirun did not exit 0\n\(result.report)")
            #expect(result.leftovers.isEmpty, "rank processes left running: \(result.leftovers)\n\(result.report)")

            // --record-expert-load under mpirun: the router wrote what it routed, every token of every MoE layer.
            let record = try #require(JSON.parse(try Data(contentsOf: load)), "\(load.path) is not JSON")
            let tokens = try #require(record["window"]?["tokens"]?.int)
            #expect(tokens > 0)
            guard case .array(let layers) = record["layers"] else { Issue.record("no layers in \(record)"); return }
            #expect(layers.compactMap { $0["layer"]?.int } == [1, 2, 3])
            for layer in layers {
                #expect(layer["tokens_per_expert"]?.ints?.reduce(0, +) == tokens * 4, "\(layer)")
            }
        }
    }
}
