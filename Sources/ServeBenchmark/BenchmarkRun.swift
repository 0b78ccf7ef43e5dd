import Foundation

/// A benchmark run: warm-up requests, then the measured ones on their arrival schedule,
/// each bounded by the timeout, so the run ends by itself.
public enum BenchmarkRun {
    public static func run(_ settings: BenchmarkSettings) async throws(BenchmarkError) -> BenchmarkReport {
        let client = ServingClient(settings: settings, connections: settings.concurrencyLimit ?? settings.requests)
        do throws(BenchmarkError) {
            let report = try await measure(settings, client: client)
            await client.shutdown()
            return report
        } catch {
            await client.shutdown()
            throw error
        }
    }

    private static func measure(_ settings: BenchmarkSettings, client: ServingClient) async throws(BenchmarkError) -> BenchmarkReport {
        var settings = settings
        let model: String
        if let given = settings.model { model = given } else { model = try await client.servedModel() }
        settings.model = model
        let prompts = PromptSource(length: settings.promptLength, seed: settings.seed)
        let body = { [endpoint = settings.endpoint, maxTokens = settings.maxTokens] (index: Int) in
            StreamedRequestBody(endpoint: endpoint, model: model, prompts: prompts, index: index, maxTokens: maxTokens).json()
        }

        // Warm-up prompts come after the measured ones, so none of them is measured again.
        let warmups = settings.requests..<(settings.requests + settings.warmup)
        let warmed = await dispatch(warmups.map(body), at: Array(repeating: 0, count: warmups.count),
                                    limit: settings.concurrencyLimit, client: client)
        if let failure = warmed.lazy.compactMap(\.failure).first { throw .warmupFailed(failure) }

        let offsets = ArrivalSchedule.offsets(count: settings.requests, rate: settings.rate, seed: settings.seed)
        let start = ContinuousClock.now
        let records = await dispatch((0..<settings.requests).map(body), at: offsets, limit: settings.concurrencyLimit, client: client)
        let duration = (ContinuousClock.now - start).seconds
        return BenchmarkReport(settings: settings, host: .current(),
                               summary: BenchmarkSummary(records: records, durationSeconds: duration), requests: records)
    }

    /// Sends `bodies[i]` at `offsets[i]` seconds from now, or later while `limit` requests
    /// are in flight; the records come back in request order.
    private static func dispatch(_ bodies: [Data], at offsets: [Double], limit: Int?, client: ServingClient) async -> [RequestRecord] {
        let start = ContinuousClock.now
        var records = await withTaskGroup(of: RequestRecord.self) { group in
            var records: [RequestRecord] = []
            var inFlight = 0
            for (index, body) in bodies.enumerated() {
                try? await Task.sleep(until: start + .seconds(offsets[index]), clock: .continuous)
                if let limit, inFlight >= limit, let done = await group.next() {
                    records.append(done)
                    inFlight -= 1
                }
                let sentAt = (ContinuousClock.now - start).seconds
                group.addTask { RequestRecord(index: index, sentAt: sentAt, outcome: await client.send(body)) }
                inFlight += 1
            }
            for await done in group { records.append(done) }
            return records
        }
        records.sort { $0.index < $1.index }
        return records
    }
}
