import Foundation

/// How fast requests arrive.
public enum RequestRate: Equatable, Sendable, CustomStringConvertible {
    /// All at once (bounded only by the concurrency limit).
    case unlimited
    /// A Poisson process with this many requests per second on average.
    case perSecond(Double)

    /// "inf" or a positive number of requests per second.
    public init?(parsing text: String) {
        if ["inf", "infinity"].contains(text.lowercased()) {
            self = .unlimited
        } else if let rate = Double(text), rate.isFinite, rate > 0 {
            self = .perSecond(rate)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .unlimited: "inf"
        case .perSecond(let rate): "\(rate)"
        }
    }
}

/// When each request is sent, in seconds from the start of the run.
public enum ArrivalSchedule {
    /// The first request goes at 0; after it, gaps drawn from an exponential distribution
    /// with mean 1/rate (a Poisson process, as vLLM's benchmark sends), from a generator
    /// seeded with `seed` so a seed repeats the timing.
    public static func offsets(count: Int, rate: RequestRate, seed: UInt64) -> [Double] {
        guard case .perSecond(let perSecond) = rate else { return Array(repeating: 0, count: count) }
        var generator = SeededGenerator(seed: seed)
        var time = 0.0
        return (0..<count).map { index in
            // 1 − u lies in (0, 1], so the log is finite.
            if index > 0 { time += -log(1 - generator.nextUnit()) / perSecond }
            return time
        }
    }
}
