import Attention
import Checkpoint
import Engine
import Foundation
import Model
import Sampling
import Testing

/// The engine against Hugging Face transformers on its own tiny checkpoints (fp32).
@Suite struct ParityTests {
    @Test(arguments: Fixtures.modelCases)
    func logitsAndRoutingMatchTransformers(_ name: String) throws {
        let reference = try Fixtures.reference(name)
        let model = try DeepseekModel(checkpoint: Checkpoint(directory: Fixtures.model(name)))
        let logits = try prefill(model, reference.prompt)
        let vocab = model.config.vocabSize
        var worst: Float = 0
        for (t, row) in reference.logits.enumerated() {
            #expect(row.count == vocab)
            for (v, expected) in row.enumerated() { worst = max(worst, abs(logits[t * vocab + v] - expected)) }
        }
        #expect(worst <= 1e-4, "max |Δlogit| \(worst) in \(name)")
        #expect(model.lastRouting(layer: reference.routing.layer) == reference.routing.experts)
    }

    @Test(arguments: Fixtures.modelCases)
    func greedyTokensMatchTransformers(_ name: String) throws {
        let reference = try Fixtures.reference(name)
        let model = try DeepseekModel(checkpoint: Checkpoint(directory: Fixtures.model(name)))
        let request = GenerationRequest(prompt: reference.prompt, maxTokens: reference.greedy.count,
                                        sampling: .greedy)
        let result = try Generator(executor: ModelRunner(model: model), tokenizer: nil).run([request])
        #expect(result[0].tokens == reference.greedy)
    }

    /// Naive (expand the cache) and absorbed (fold kv_b_proj into query and output) MLA are
    /// the same function: compare full-prompt logits computed each way, token by token for absorbed.
    @Test(arguments: Fixtures.modelCases)
    func naiveAndAbsorbedAttentionAgree(_ name: String) throws {
        let reference = try Fixtures.reference(name)
        let model = try DeepseekModel(checkpoint: Checkpoint(directory: Fixtures.model(name)))
        model.attentionAlgorithm = .naive
        let naive = try prefill(model, reference.prompt)
        model.attentionAlgorithm = .absorbed
        let cache = model.makeCache()
        var absorbed: [Float] = []
        for token in reference.prompt {
            absorbed += try model.forward(tokens: [token], batch: AttentionBatch(slices: [.init(cache: cache, first: 0, count: 1)]), logitRows: [0])
        }
        let worst = zip(naive, absorbed).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-5, "naive vs absorbed max |Δlogit| \(worst)")
    }

    /// Several sequences in one step give each the logits it gets alone.
    @Test func batchedSequencesMatchSingleOnes() throws {
        let reference = try Fixtures.reference("v3-sigmoid-grouped")
        let model = try DeepseekModel(checkpoint: Checkpoint(directory: Fixtures.model("v3-sigmoid-grouped")))
        let a = Array(reference.prompt.prefix(7)), b = Array(reference.prompt.suffix(5))
        let vocab = model.config.vocabSize
        let aloneA = Array(try prefill(model, a).suffix(vocab)), aloneB = Array(try prefill(model, b).suffix(vocab))
        let ca = model.makeCache(), cb = model.makeCache()
        let both = try model.forward(tokens: a + b, batch: AttentionBatch(slices: [.init(cache: ca, first: 0, count: a.count),
                                                                               .init(cache: cb, first: a.count, count: b.count)]),
                                 logitRows: [a.count - 1, a.count + b.count - 1])
        #expect(zip(both[..<vocab], aloneA).map { abs($0 - $1) }.max()! <= 1e-5)
        #expect(zip(both[vocab...], aloneB).map { abs($0 - $1) }.max()! <= 1e-5)
    }

    private func prefill(_ model: DeepseekModel, _ tokens: [Int]) throws -> [Float] {
        let cache = model.makeCache(capacity: tokens.count)
        return try model.forward(tokens: tokens, batch: AttentionBatch(slices: [.init(cache: cache, first: 0, count: tokens.count)]),
                             logitRows: Array(tokens.indices))
    }
}

/// Chunked prefill (the server's scheduler splits prompts under a step budget) computes the
/// same function as a whole-prompt prefill, and the greedy tokens of a chunked run match
/// transformers.
@Suite struct ChunkedPrefillParityTests {
    @Test(arguments: Fixtures.modelCases)
    func chunkedPrefillMatchesTransformers(_ name: String) throws {
        let reference = try Fixtures.reference(name)
        let runner = ModelRunner(model: try DeepseekModel(checkpoint: Checkpoint(directory: Fixtures.model(name))))
        let vocab = runner.vocabSize
        var logits: [Float] = []
        var start = 0
        for (step, size) in [5, 1, 4, 2].enumerated() where start < reference.prompt.count {
            let chunk = Array(reference.prompt[start ..< min(start + size, reference.prompt.count)])
            let work = StepPlan.Work(sequence: 0, tokens: chunk, startPosition: start, samples: false, returnsLogits: true,
                                     joining: start == 0 ? .greedy : nil, capacity: reference.prompt.count)
            logits += try runner.execute(StepPlan(step: UInt64(step), work: [work])).logits[0]!
            start += chunk.count
        }
        #expect(start == reference.prompt.count)
        var worst: Float = 0
        for (t, row) in reference.logits.enumerated() {
            for (v, expected) in row.enumerated() { worst = max(worst, abs(logits[t * vocab + v] - expected)) }
        }
        #expect(worst <= 1e-4, "max |Δlogit| \(worst) in \(name), chunks of 5, 1, 4, 2")

        let generator = Generator(executor: ModelRunner(model: runner.model), tokenizer: nil,
                                  limits: SchedulerLimits(maxRunning: 1, stepTokens: 3, positionsPerPool: 1000))
        try generator.submit(GenerationRequest(prompt: reference.prompt, maxTokens: reference.greedy.count, sampling: .greedy), id: 0)
        var tokens: [Int] = []
        while generator.hasWork { tokens += try generator.step().compactMap(\.token) }
        #expect(tokens == reference.greedy)
    }
}
