import Attention
import Checkpoint
import Engine
import Foundation
import Model
import Sampling
import Testing

/// The engine against Hugging Face transformers on its own tiny checkpoints: f32, bf16 and
/// FP8, the reference an f32 evaluation of the stored weights.
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
        let sizes = [5, 1, 4, 2]
        var step = 0
        while start < reference.prompt.count {
            let size = sizes[step % sizes.count]
            let chunk = Array(reference.prompt[start ..< min(start + size, reference.prompt.count)])
            let work = StepPlan.Work(sequence: 0, tokens: chunk, startPosition: start, samples: false, returnsLogits: true,
                                     joining: start == 0 ? .greedy : nil, capacity: reference.prompt.count)
            logits += try runner.execute(StepPlan(step: UInt64(step), work: [work])).logits[0]!
            start += chunk.count
            step += 1
        }
        var worst: Float = 0
        for (t, row) in reference.logits.enumerated() {
            for (v, expected) in row.enumerated() { worst = max(worst, abs(logits[t * vocab + v] - expected)) }
        }
        #expect(worst <= 1e-4, "max |Δlogit| \(worst) in \(name), chunks of 5, 1, 4, 2, …")

        let generator = Generator(executor: ModelRunner(model: runner.model), tokenizer: nil,
                                  limits: SchedulerLimits(maxRunning: 1, stepTokens: 3, positionsPerPool: 1000))
        try generator.submit(GenerationRequest(prompt: reference.prompt, maxTokens: reference.greedy.count, sampling: .greedy), id: 0)
        var tokens: [Int] = []
        while generator.hasWork { tokens += try generator.step().compactMap(\.token) }
        #expect(tokens == reference.greedy)
    }
}
