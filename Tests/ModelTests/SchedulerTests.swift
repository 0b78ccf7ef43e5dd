import Engine
import Sampling
import Testing

/// Continuous batching on a scripted executor: chunked prefill under the step budget,
/// decode before prompt chunks, admission by cache capacity, cancellation.
@Suite struct SchedulerTests {
    typealias Scripted = GeneratorTests.ScriptedExecutor

    func request(_ prompt: Int, maxTokens: Int) -> GenerationRequest {
        GenerationRequest(prompt: Array(1...prompt), maxTokens: maxTokens, sampling: .greedy)
    }

    @Test func chunksALongPromptUnderTheStepBudget() throws {
        let executor = Scripted([])
        let generator = Generator(executor: executor, tokenizer: nil,
                                  limits: SchedulerLimits(maxRunning: 4, stepTokens: 4, positionsPerPool: 1000))
        try generator.submit(request(10, maxTokens: 2), id: 7)
        while generator.hasWork { _ = try generator.step() }
        let work = executor.plans.flatMap(\.work)
        #expect(work.map(\.tokens) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10], [42]])
        #expect(work.map(\.startPosition) == [0, 4, 8, 10])
        #expect(work.map(\.samples) == [false, false, true, true])
        #expect(work.map { $0.joining != nil } == [true, false, false, false], "only the first chunk joins")
        #expect(work[0].capacity == 12)
    }

    @Test func decodesRunningSequencesBeforeNewPromptChunks() throws {
        let executor = Scripted([])
        let generator = Generator(executor: executor, tokenizer: nil,
                                  limits: SchedulerLimits(maxRunning: 4, stepTokens: 4, positionsPerPool: 1000))
        try generator.submit(request(2, maxTokens: 10), id: 0)
        _ = try generator.step()
        try generator.submit(request(9, maxTokens: 1), id: 1)
        for _ in 0..<3 { _ = try generator.step() }
        let steps = executor.plans.dropFirst().prefix(3).map { $0.work.map { "\($0.sequence):\($0.tokens.count)" } }
        #expect(steps == [["0:1", "1:3"], ["0:1", "1:3"], ["0:1", "1:3"]], "one decode token, then the prompt fills the budget")
    }

    @Test func admitsByCacheCapacityAndSpreadsOverPools() throws {
        let one = Scripted([])
        let limits = SchedulerLimits(maxRunning: 8, stepTokens: 64, positionsPerPool: 20)
        let single = Generator(executor: one, tokenizer: nil, limits: limits)
        try single.submit(request(5, maxTokens: 10), id: 0)
        try single.submit(request(5, maxTokens: 10), id: 1)
        _ = try single.step()
        #expect(one.plans[0].work.map(\.sequence) == [0], "15 + 15 positions do not fit one pool of 20")
        #expect(single.load.waiting == 1 && single.load.reservedPositions == [15])
        while single.hasWork { _ = try single.step() }
        #expect(one.plans.flatMap(\.work).filter { $0.joining != nil }.map(\.sequence) == [0, 1], "the second joins once the first leaves")
        #expect(single.load.reservedPositions == [0])

        let two = Scripted([])
        two.cachePools = 2
        let spread = Generator(executor: two, tokenizer: nil, limits: limits)
        try spread.submit(request(5, maxTokens: 10), id: 0)
        try spread.submit(request(5, maxTokens: 10), id: 1)
        _ = try spread.step()
        #expect(two.plans[0].work.map(\.pool) == [0, 1])
        #expect(spread.load.reservedPositions == [15, 15])

        #expect(throws: GenerationError.self) { try single.submit(request(15, maxTokens: 10), id: 9) }
    }

    @Test func limitsRunningSequences() throws {
        let executor = Scripted([])
        let generator = Generator(executor: executor, tokenizer: nil,
                                  limits: SchedulerLimits(maxRunning: 2, stepTokens: 64, positionsPerPool: 1000))
        for id in 0..<3 { try generator.submit(request(3, maxTokens: 4), id: UInt64(id)) }
        _ = try generator.step()
        #expect(executor.plans[0].work.map(\.sequence) == [0, 1])
        #expect(generator.load.running == 2 && generator.load.waiting == 1)
    }

    @Test func cancellationFreesTheCacheAtTheNextStep() throws {
        let executor = Scripted([])
        let generator = Generator(executor: executor, tokenizer: nil,
                                  limits: SchedulerLimits(maxRunning: 1, stepTokens: 64, positionsPerPool: 1000))
        try generator.submit(request(3, maxTokens: 50), id: 0)
        try generator.submit(request(3, maxTokens: 50), id: 1)
        _ = try generator.step()
        generator.cancel(1)
        generator.cancel(0)
        let updates = try generator.step()
        let finished = updates.compactMap { u in u.finished.map { (u.id, $0.finishReason) } }
        #expect(finished.map(\.0).sorted() == [0, 1] && finished.allSatisfy { $0.1 == .cancelled })
        #expect(executor.plans.last!.finished == [0], "the running sequence's cache is freed; the waiting one never had one")
        #expect(!generator.hasWork && generator.load.reservedPositions == [0] && generator.load.running == 0)
        #expect(executor.plans.last!.work.isEmpty)
    }

    @Test func reportsLogprobsOnlyForKeptTokens() throws {
        let eos = 99
        let executor = Scripted([[5, eos]])
        let generator = Generator(executor: executor, tokenizer: nil)
        try generator.submit(GenerationRequest(prompt: [1], maxTokens: 5, sampling: .greedy, stopTokenIds: [eos], logprobs: 2), id: 0)
        var tokens: [Int?] = []
        var result: GenerationResult?
        while generator.hasWork {
            for u in try generator.step() {
                if u.finished == nil { tokens.append(u.token) } else { result = u.finished }
            }
        }
        #expect(executor.plans.flatMap(\.work).allSatisfy { $0.logprobs == 2 })
        #expect(tokens == [5, nil], "the stop token is not part of the output")
        #expect(result?.tokens == [5] && result?.generated == 2 && result?.finishReason == .stopToken)
    }
}
