import Attention
import Engine
import Foundation
import Sampling
import Testing
import Tokenizer

/// The generation loop's stop conditions and streaming, on a scripted executor.
@Suite struct GeneratorTests {
    /// Answers every step with the next id of its script, one script per sequence.
    final class ScriptedExecutor: StepExecutor {
        let vocabSize = 2000
        let contextLength = 64
        var cachePools = 1
        var scripts: [UInt64: [Int]]
        var plans: [StepPlan] = []
        init(_ scripts: [[Int]]) { self.scripts = Dictionary(uniqueKeysWithValues: scripts.enumerated().map { (UInt64($0), $1) }) }

        func execute(_ plan: StepPlan) throws -> StepOutput {
            plans.append(plan)
            var out = StepOutput()
            for w in plan.work where w.samples { out.tokens[w.sequence] = scripts[w.sequence]?.removeFirst() ?? 42 }
            return out
        }
    }

    static let tokenizer = try! Tokenizer(directory: Fixtures.root.appendingPathComponent("tokenizer"))

    func ids(_ text: String) -> [Int] { Self.tokenizer.encode(text, addBOS: false) }

    @Test func stopsOnStopTokenLengthAndStopString() throws {
        let eos = Self.tokenizer.eosId
        let stopText = ids(" hello world STOP and more")
        let executor = ScriptedExecutor([ids(" one two") + [eos, 5, 6], Array(repeating: 42, count: 10), stopText])
        let requests = [
            GenerationRequest(prompt: [0, 1], maxTokens: 10, sampling: .greedy, stopTokenIds: [eos]),
            GenerationRequest(prompt: [0], maxTokens: 3, sampling: .greedy),
            GenerationRequest(prompt: [0, 9, 9], maxTokens: 20, sampling: .greedy, stopStrings: ["STOP"]),
        ]
        var streamed = ["", "", ""]
        let results = try Generator(executor: executor, tokenizer: Self.tokenizer).run(requests) { streamed[$0] += $1 }
        #expect(results[0].finishReason == .stopToken && results[0].text == " one two" && !results[0].tokens.contains(eos))
        #expect(results[1].finishReason == .length && results[1].tokens.count == 3)
        #expect(results[2].finishReason == .stopString && results[2].text == " hello world ")
        #expect(streamed == results.map(\.text), "streamed text is the final text")
    }

    @Test func plansPrefillThenDecodeAndFreeFinishedSequences() throws {
        let executor = ScriptedExecutor([[7, 8, 9], [5]])
        _ = try Generator(executor: executor, tokenizer: nil).run([
            GenerationRequest(prompt: [1, 2, 3], maxTokens: 3, sampling: .greedy),
            GenerationRequest(prompt: [4], maxTokens: 1, sampling: .greedy),
        ])
        let first = executor.plans[0]
        #expect(first.work.map(\.tokens) == [[1, 2, 3], [4]] && first.work.allSatisfy { $0.joining != nil && $0.startPosition == 0 })
        let second = executor.plans[1]
        #expect(second.work.map(\.tokens) == [[7]] && second.work[0].startPosition == 3 && second.finished == [1])
        #expect(executor.plans.last!.work.isEmpty && executor.plans.last!.finished == [0])
    }

    @Test func stopsForLengthWhenTheContextIsFull() throws {
        let executor = ScriptedExecutor([Array(repeating: 42, count: 100)])
        let result = try Generator(executor: executor, tokenizer: nil).run([GenerationRequest(prompt: Array(repeating: 3, count: 60), maxTokens: 50, sampling: .greedy)])
        #expect(result[0].tokens.count == 4 && result[0].finishReason == .length)
        #expect(throws: GenerationError.self) {
            try Generator(executor: executor, tokenizer: nil).run([GenerationRequest(prompt: Array(repeating: 3, count: 64), maxTokens: 1, sampling: .greedy)])
        }
    }

    @Test func rejectsEmptyPromptsAndOutOfRangeTokens() {
        let executor = ScriptedExecutor([[1]])
        #expect(throws: GenerationError.self) {
            try Generator(executor: executor, tokenizer: nil).run([GenerationRequest(prompt: [], maxTokens: 1, sampling: .greedy)])
        }
        #expect(throws: GenerationError.self) {
            try Generator(executor: executor, tokenizer: nil).run([GenerationRequest(prompt: [5000], maxTokens: 1, sampling: .greedy)])
        }
    }
}
