import ServeBenchmark
import Testing

@Suite struct StreamMeasurementTests {
    func chunk(_ text: String) -> StreamEvent {
        .data(#"{"choices":[{"index":0,"text":"\#(text)","finish_reason":null}],"usage":null}"#)
    }

    let usage = StreamEvent.data(#"{"choices":[],"usage":{"prompt_tokens":32,"completion_tokens":4,"total_tokens":36}}"#)

    @Test func timesTextChunksAndReadsUsage() throws {
        var measurement = StreamMeasurement()
        try measurement.observe(chunk(""), at: 0.05)  // no text: not the first token
        try measurement.observe(chunk("a"), at: 0.10)
        try measurement.observe(chunk("b"), at: 0.15)
        try measurement.observe(chunk("c"), at: 0.30)
        try measurement.observe(chunk("d"), at: 0.35)
        try measurement.observe(usage, at: 0.35)
        try measurement.observe(.done, at: 0.36)
        let done = try measurement.finish(at: 0.40)
        #expect(done.ttft == 0.10)
        #expect(done.e2e == 0.40)
        #expect(zip(done.itl, [0.05, 0.15, 0.05]).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(done.promptTokens == 32 && done.outputTokens == 4)
        #expect(abs(done.tpot! - 0.1) < 1e-12)  // (0.40 − 0.10) / 3
    }

    @Test func chatDeltasCountAndTheRoleChunkDoesNot() throws {
        var measurement = StreamMeasurement()
        try measurement.observe(.data(#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#), at: 0.01)
        try measurement.observe(.data(#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#), at: 0.02)
        try measurement.observe(usage, at: 0.03)
        try measurement.observe(.done, at: 0.03)
        #expect(try measurement.finish(at: 0.03).ttft == 0.02)
    }

    @Test func streamWithoutDoneFails() throws {
        var measurement = StreamMeasurement()
        try measurement.observe(chunk("a"), at: 0.1)
        try measurement.observe(usage, at: 0.1)
        #expect(throws: RequestFailure.missingDone) { try measurement.finish(at: 0.2) }
    }

    @Test func streamWithoutTextOrUsageFails() throws {
        var noText = StreamMeasurement()
        try noText.observe(usage, at: 0.1)
        try noText.observe(.done, at: 0.1)
        #expect(throws: RequestFailure.noText) { try noText.finish(at: 0.1) }

        var noUsage = StreamMeasurement()
        try noUsage.observe(chunk("a"), at: 0.1)
        try noUsage.observe(.done, at: 0.1)
        #expect(throws: RequestFailure.missingUsage) { try noUsage.finish(at: 0.1) }
    }

    @Test func errorsInTheStreamAreFailures() {
        var measurement = StreamMeasurement()
        #expect(throws: RequestFailure.streamError("engine stopped")) {
            try measurement.observe(.data(#"{"error":{"message":"engine stopped","type":"server_error"}}"#), at: 0.1)
        }
        #expect(throws: RequestFailure.self) { try measurement.observe(.data("not json"), at: 0.1) }
    }

    @Test func failuresSayWhatHappened() {
        #expect(RequestFailure.httpStatus(429, message: "queue full").description == "HTTP 429: queue full")
        #expect(RequestFailure.timeout(seconds: 5).description.contains("--timeout"))
    }
}
