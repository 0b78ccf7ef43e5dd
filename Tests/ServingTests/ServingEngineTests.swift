import Checkpoint
import Engine
import Foundation
import Model
import Presets
import Sampling
import Serving
import Testing

/// The serving engine on the tiny model (f32 storage): requests submitted from other
/// threads while the loop runs, cancellation, the queue bound, drain, and seeded sampling
/// that does not depend on what else is running.
@Suite(.serialized) struct ServingEngineTests {
    static let model: DeepseekModel = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("serving-tiny-\(getpid())")
        try! SyntheticCheckpoint.write(preset: .tiny, to: directory, seed: 0, weights: .f32)
        // The weights stay mapped after the files are gone.
        defer { try? FileManager.default.removeItem(at: directory) }
        return try! DeepseekModel(checkpoint: Checkpoint(directory: directory))
    }()

    /// An engine whose loop runs on its own thread until drained.
    final class Running: @unchecked Sendable {
        let engine: ServingEngine
        let done = DispatchSemaphore(value: 0)

        init(maxRunning: Int = 8, maxQueue: Int = 16) {
            engine = ServingEngine(options: .init(limits: SchedulerLimits(maxRunning: maxRunning, stepTokens: 64, positionsPerPool: 100_000),
                                                  maxQueue: maxQueue))
            Thread { [engine, done] in
                let generator = Generator(executor: ModelRunner(model: ServingEngineTests.model), tokenizer: nil, limits: engine.options.limits)
                try? engine.run(generator)
                done.signal()
            }.start()
            while engine.currentState != .ready { usleep(1000) }
        }

        func stop() async {
            await engine.drain(grace: 5)
            done.wait()
        }
    }

    func request(_ prompt: [Int], maxTokens: Int, sampling: SamplingParameters = .greedy) -> GenerationRequest {
        GenerationRequest(prompt: prompt, maxTokens: maxTokens, sampling: sampling)
    }

    func collect(_ updates: AsyncThrowingStream<ServedUpdate, Error>) async throws -> (tokens: [Int], result: GenerationResult?, timing: RequestTiming?) {
        var tokens: [Int] = []
        for try await u in updates {
            if let t = u.update.token { tokens.append(t) }
            if let r = u.update.finished { return (tokens, r, u.timing) }
        }
        return (tokens, nil, nil)
    }

    @Test func streamsEveryTokenThenTheResult() async throws {
        let running = Running()
        let (_, updates) = try running.engine.submit(request([1, 2, 3, 4], maxTokens: 6))
        let (tokens, result, timing) = try await collect(updates)
        #expect(tokens.count == 6 && result?.tokens == tokens && result?.finishReason == .length)
        #expect(timing.map { $0.timeToFirstToken! <= $0.total } == true)
        await running.stop()
        #expect(running.engine.currentState == .stopped)
        #expect(throws: SubmissionError.draining) { try running.engine.submit(request([1], maxTokens: 1)) }
    }

    @Test func seededSamplingDoesNotDependOnOtherRequests() async throws {
        let seeded = request([5, 6, 7], maxTokens: 12, sampling: SamplingParameters(temperature: 0.9, topP: 0.95, seed: 7))
        let running = Running()
        let alone = try await collect(try running.engine.submit(seeded).updates).tokens
        let others = try (0..<4).map { i in
            try running.engine.submit(request([9, 10 + i, 11, 12, 13], maxTokens: 10, sampling: SamplingParameters(temperature: 1, seed: UInt64(i)))).updates
        }
        let together = try await collect(try running.engine.submit(seeded).updates).tokens
        for o in others { _ = try await collect(o) }
        await running.stop()
        #expect(alone.count == 12 && alone == together)
    }

    @Test func boundsTheQueueAndFreesCancelledRequests() async throws {
        let running = Running(maxRunning: 1, maxQueue: 1)
        let first = try running.engine.submit(request([1, 2], maxTokens: 3000))
        while running.engine.currentLoad.running < 1 { try await Task.sleep(nanoseconds: 1_000_000) }
        let second = try running.engine.submit(request([3, 4], maxTokens: 5))
        #expect(throws: SubmissionError.queueFull(limit: 1)) { try running.engine.submit(request([5], maxTokens: 5)) }

        // A consumer that goes away cancels its request; the waiting one then runs.
        let consumer = Task { for try await _ in first.updates {} }
        try await Task.sleep(nanoseconds: 50_000_000)
        consumer.cancel()
        let (tokens, result, _) = try await collect(second.updates)
        #expect(tokens.count == 5 && result?.finishReason == .length)
        while running.engine.currentLoad.running > 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        #expect(running.engine.currentLoad.reservedPositions == [0] && running.engine.currentLoad.waiting == 0)
        await running.stop()
    }

    @Test func drainCutsRequestsAfterTheGracePeriod() async throws {
        let running = Running()
        let long = try running.engine.submit(request([1, 2, 3], maxTokens: 3000))
        let collector = Task { try await collect(long.updates) }
        while running.engine.currentLoad.running < 1 { try await Task.sleep(nanoseconds: 1_000_000) }
        await running.engine.drain(grace: 0.1)
        running.done.wait()
        let (tokens, result, _) = try await collector.value
        #expect(result?.finishReason == .cancelled && !tokens.isEmpty && tokens.count < 3000)
        #expect(running.engine.currentState == .stopped)
    }

    @Test func refusesWhileLoadingAndRequestsThatCanNeverRun() throws {
        let engine = ServingEngine(options: .init(limits: SchedulerLimits(maxRunning: 1, stepTokens: 8, positionsPerPool: 10), maxQueue: 4))
        #expect(throws: SubmissionError.loading) { try engine.submit(request([1], maxTokens: 1)) }
        engine.stop()
    }
}
