import ControlPlane
import Foundation

/// What one rank did over a run: kept by every rank, sent to rank 0 as a `Stats` message
/// at shutdown, and printed there as a table (where each rank's time went).
struct RankActivity {
    private let start = DispatchTime.now().uptimeNanoseconds
    var steps = 0
    var prefillTokens = 0
    var decodeTokens = 0
    /// Rows an expert rank received (token-rank pairs).
    var expertTokens = 0
    /// Seconds computing, as opposed to waiting for peers.
    var busySeconds = 0.0

    /// Runs `body`, counting its time as busy.
    mutating func busy<T>(_ body: () throws -> T) rethrows -> T {
        let t = DispatchTime.now().uptimeNanoseconds
        defer { busySeconds += Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 }
        return try body()
    }

    func stats(rank: Int) -> RankStats {
        RankStats(rank: rank, steps: steps, prefillTokens: prefillTokens, decodeTokens: decodeTokens, expertTokens: expertTokens,
                  busySeconds: busySeconds, wallSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
