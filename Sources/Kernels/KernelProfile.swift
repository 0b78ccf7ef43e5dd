import Foundation
import Synchronization

/// The exact kernels' paths (`ExactRows`), chosen by the tokens a product multiplies at once;
/// each is bounded by something else, so each has its own rate.
public enum KernelPath: Int, CaseIterable, Sendable {
    /// One token (decode): each weight streamed once, bound by memory bandwidth.
    case oneToken
    /// Two or three tokens: each block widened once for all of them.
    case fewTokens
    /// Four to sixteen tokens (batched decode, a prompt's tokens per routed expert), and up
    /// to 32 on rows wider than 682 columns (AVX-512): weights streamed two rows at a time,
    /// met by up to eight tokens per widened block.
    case streamed
    /// Rows of one 64-column block against more tokens (MLA's per-head products).
    case oneBlock
    /// More tokens (prefill): decoded rows in register tiles of 4 rows × 6 tokens, bound by
    /// the multiply-adds.
    case tiles

    /// The path `ExactRows` takes for `tokens` tokens against rows `cols` wide.
    public init(tokens: Int, cols: Int) {
        switch tokens {
        case 1: self = .oneToken
        case 2...3: self = .fewTokens
        case _ where !ExactRows.tiles(tokens: tokens, cols: cols): self = .streamed
        default: self = cols == ExactRows.block ? .oneBlock : .tiles
        }
    }

    public var label: String {
        switch self {
        case .oneToken: "1 token"
        case .fewTokens: "2–3 tokens"
        case .streamed: "4–32 tokens, streamed"
        case .oneBlock: "one 64-column block"
        case .tiles: "17+ tokens, register tiles"
        }
    }
}

/// Time, multiply-adds and weight bytes of the exact kernels' calls by path, summed over
/// every thread: where a test's product time goes, and the rate each path reaches inside the
/// engine (a scratch benchmark of one kernel alone does not see the rest of a step). Off
/// unless `measure` runs; each call then costs two clock reads.
public enum KernelProfile {
    public struct Totals: Sendable {
        public var calls = 0
        /// Thread-seconds inside the path's calls.
        public var seconds = 0.0
        public var flops = 0.0
        public var weightBytes = 0.0

        static func + (a: Totals, b: Totals) -> Totals {
            Totals(calls: a.calls + b.calls, seconds: a.seconds + b.seconds, flops: a.flops + b.flops, weightBytes: a.weightBytes + b.weightBytes)
        }

        static func - (a: Totals, b: Totals) -> Totals {
            Totals(calls: a.calls - b.calls, seconds: a.seconds - b.seconds, flops: a.flops - b.flops, weightBytes: a.weightBytes - b.weightBytes)
        }
    }

    /// Runs `body` with the profile on and returns what its calls added, by path (paths
    /// without calls left out). Not reentrant; `body`'s parallel regions must have ended when
    /// it returns, as every pool region has.
    public static func measure(_ body: () throws -> Void) rethrows -> [KernelPath: Totals] {
        let before = totals()
        isOn = true
        defer { isOn = false }
        try body()
        var added: [KernelPath: Totals] = [:]
        for (path, now) in totals() {
            let then = before[path] ?? Totals()
            if now.calls > then.calls { added[path] = now - then }
        }
        return added
    }

    nonisolated(unsafe) static var isOn = false

    /// Every thread's counters, registered as each thread makes its `ThreadScratch`.
    private static let counters = Mutex<[PathCounters]>([])

    static func register(_ c: PathCounters) { counters.withLock { $0.append(c) } }

    private static func totals() -> [KernelPath: Totals] {
        counters.withLock { all in
            var sum: [KernelPath: Totals] = [:]
            for c in all {
                for path in KernelPath.allCases where c.totals[path.rawValue].calls > 0 {
                    sum[path] = (sum[path] ?? Totals()) + c.totals[path.rawValue]
                }
            }
            return sum
        }
    }
}

/// One thread's totals per path, written only by that thread (no atomics on the hot path);
/// read by `KernelProfile` after the pool region that wrote them has ended.
final class PathCounters: @unchecked Sendable {
    var totals = [KernelProfile.Totals](repeating: .init(), count: KernelPath.allCases.count)

    func record(_ path: KernelPath, nanoseconds: UInt64, flops: Double, weightBytes: Double) {
        totals[path.rawValue] = totals[path.rawValue] + .init(calls: 1, seconds: Double(nanoseconds) / 1e9, flops: flops, weightBytes: weightBytes)
    }
}
