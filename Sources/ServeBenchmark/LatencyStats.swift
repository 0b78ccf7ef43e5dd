/// The `p`-th percentile (0...100) of ascending `sorted` values, interpolating linearly
/// between the two nearest ranks: numpy's default method, so numbers match vLLM's report.
public func percentile(_ sorted: [Double], _ p: Double) -> Double {
    precondition(!sorted.isEmpty, "percentile of no values")
    let rank = p / 100 * Double(sorted.count - 1)
    let below = Int(rank.rounded(.down))
    let above = min(below + 1, sorted.count - 1)
    return sorted[below] + (sorted[above] - sorted[below]) * (rank - Double(below))
}

/// Mean and percentiles of one latency, in milliseconds.
public struct LatencyStats: Codable, Equatable, Sendable {
    public var mean: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double

    /// nil without samples (no request succeeded, or none had a second token).
    public init?(seconds samples: [Double]) {
        guard !samples.isEmpty else { return nil }
        let ms = samples.map { $0 * 1000 }.sorted()
        mean = ms.reduce(0, +) / Double(ms.count)
        p50 = percentile(ms, 50)
        p90 = percentile(ms, 90)
        p99 = percentile(ms, 99)
    }
}
