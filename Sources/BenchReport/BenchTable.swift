import Foundation

/// What a test does per step: FLOP for prefill (one token a step), bytes of weight read for
/// decode (a step advances every sequence of the batch by one token).
public struct Work: Equatable, Sendable {
    public enum Kind: Sendable { case flop, bytes }
    public var kind: Kind
    public var perStep: Double
    public var tokensPerStep: Int

    public init(_ kind: Kind, perStep: Double, tokensPerStep: Int = 1) {
        self.kind = kind
        self.perStep = perStep
        self.tokensPerStep = tokensPerStep
    }

    /// The rate `capacity` (FLOP or bytes per second) allows: capacity ÷ work per step × tokens per step.
    public func tokensPerSecond(at capacity: Double) -> Double { capacity / perStep * Double(tokensPerStep) }

    /// FLOP or bytes per second that `tokensPerSecond` implies.
    public func rate(at tokensPerSecond: Double) -> Double { tokensPerSecond / Double(tokensPerStep) * perStep }
}

/// A capacity (FLOP or bytes per second) a test's rate is bounded by.
public struct Bound: Equatable, Sendable {
    public var label: String
    public var capacity: Double
    /// Whether the table gives the measured rate as a fraction of this bound.
    public var isCompared: Bool

    public init(_ label: String, capacity: Double, isCompared: Bool) {
        self.label = label
        self.capacity = capacity
        self.isCompared = isCompared
    }

    /// A compute peak in FLOP per second.
    public static func peak(_ name: String, flopsPerSecond: Double) -> Bound {
        Bound("\(name): " + String(format: "%.1f GFLOP/s", flopsPerSecond / 1e9), capacity: flopsPerSecond, isCompared: true)
    }

    /// Streaming read bandwidth sampled right before and right after a test, and their mean,
    /// which the measured rate is compared with: the rate spans the whole interval between the
    /// samples, and one of them alone can be an outlier of the swings seen here.
    public static func bandwidth(before: Double, after: Double) -> [Bound] {
        [Bound(String(format: "bandwidth before: %.1f GB/s", before / 1e9), capacity: before, isCompared: false),
         Bound(String(format: "bandwidth after: %.1f GB/s", after / 1e9), capacity: after, isCompared: false),
         Bound(String(format: "roofline at their mean: %.1f GB/s", (before + after) / 2e9), capacity: (before + after) / 2, isCompared: true)]
    }
}

/// One test of `conclave bench`: tokens per second per repetition, its work, and its bounds.
public struct BenchTest: Sendable {
    public var name: String
    public var tokensPerSecond: [Double]
    public var work: Work
    public var bounds: [Bound]

    public init(name: String, tokensPerSecond: [Double], work: Work, bounds: [Bound]) {
        self.name = name
        self.tokensPerSecond = tokensPerSecond
        self.work = work
        self.bounds = bounds
    }

    public var mean: Double { tokensPerSecond.reduce(0, +) / Double(tokensPerSecond.count) }

    /// Sample standard deviation over the repetitions (0 for one).
    public var standardDeviation: Double {
        let m = mean
        return (tokensPerSecond.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(max(tokensPerSecond.count - 1, 1))).squareRoot()
    }
}

/// A test's matrix products by kernel path: what `BenchTable.paths` prints.
public struct PathTest: Sendable {
    public struct Path: Sendable {
        public var path: String
        public var calls: Int
        /// Thread-seconds inside the path's calls.
        public var seconds: Double
        public var flops: Double
        public var weightBytes: Double

        public init(path: String, calls: Int, seconds: Double, flops: Double, weightBytes: Double) {
            self.path = path
            self.calls = calls
            self.seconds = seconds
            self.flops = flops
            self.weightBytes = weightBytes
        }

        /// FLOP and weight bytes per second a thread reaches while in the path.
        var flopsPerSecond: Double { seconds > 0 ? flops / seconds : 0 }
        var bytesPerSecond: Double { seconds > 0 ? weightBytes / seconds : 0 }
    }

    public var name: String
    /// Wall time of the profiled runs × threads.
    public var threadSeconds: Double
    public var paths: [Path]

    public init(name: String, threadSeconds: Double, paths: [Path]) {
        self.name = name
        self.threadSeconds = threadSeconds
        self.paths = paths
    }
}

/// The Markdown tables `conclave bench` prints (docs/PERFORMANCE.md quotes them).
public enum BenchTable {
    /// One row per test and a row under it per further bound: rate ± deviation, the work per
    /// step, the FLOP or bytes per second the rate implies, and each bound as tokens per second.
    public static func tests(_ tests: [BenchTest]) -> [String] {
        var lines = ["| test | tokens/s | ± | work | implied | bounded by | bound, tokens/s | of bound |",
                     "|---|---:|---:|---:|---:|---|---:|---:|"]
        for test in tests {
            let measured = [test.name, fixed(test.mean), fixed(test.standardDeviation), describe(test.work), implied(test)]
            let bounds: [Bound?] = test.bounds.isEmpty ? [nil] : test.bounds
            for (i, bound) in bounds.enumerated() {
                let limit = bound.map { test.work.tokensPerSecond(at: $0.capacity) }
                let cells = (i == 0 ? measured : Array(repeating: "", count: measured.count)) + [
                    bound?.label ?? "", limit.map { fixed($0) } ?? "",
                    bound?.isCompared == true ? limit.map { String(format: "%.0f%%", 100 * test.mean / $0) } ?? "" : "",
                ]
                lines.append("| " + cells.joined(separator: " | ") + " |")
            }
        }
        return lines
    }

    /// One row per peak, a column per thread count ("n/a" where it could not be measured).
    public static func peaks(_ rows: [(name: String, flopsPerSecond: [Double?])], threads: [Int]) -> [String] {
        ["| peak, GFLOP/s | " + threads.map { $0 == 1 ? "1 thread" : "\($0) threads" }.joined(separator: " | ") + " |",
         "|---|" + String(repeating: "---:|", count: threads.count)]
            + rows.map { row in
                "| \(row.name) | " + row.flopsPerSecond.map { $0.map { fixed($0 / 1e9) } ?? "n/a" }.joined(separator: " | ") + " |"
            }
    }

    /// One row per (test, kernel path): calls, the path's share of the threads' time during the
    /// test (wall time × threads; what no row covers is spent outside the products), the
    /// GFLOP/s and weight GB/s a thread reaches inside the path, and that rate against one
    /// thread's f32 FMA peak.
    public static func paths(_ tests: [PathTest], threadPeak: Double) -> [String] {
        var lines = ["| test | kernel path | calls | of the threads' time | GFLOP/s per thread | of 1-thread f32 FMA peak | weight GB/s per thread |",
                     "|---|---|---:|---:|---:|---:|---:|"]
        for test in tests {
            for (i, p) in test.paths.enumerated() {
                let cells = [i == 0 ? test.name : "", p.path, "\(p.calls)",
                             String(format: "%.0f%%", 100 * p.seconds / test.threadSeconds), fixed(p.flopsPerSecond / 1e9),
                             String(format: "%.0f%%", 100 * p.flopsPerSecond / threadPeak), fixed(p.bytesPerSecond / 1e9)]
                lines.append("| " + cells.joined(separator: " | ") + " |")
            }
        }
        return lines
    }

    private static func fixed(_ value: Double) -> String { String(format: "%.1f", value) }

    private static func describe(_ work: Work) -> String {
        switch work.kind {
        case .flop: String(format: "%.1f MFLOP/token", work.perStep / 1e6)
        case .bytes: String(format: "%.1f MB/step", work.perStep / 1e6)
        }
    }

    private static func implied(_ test: BenchTest) -> String {
        let rate = test.work.rate(at: test.mean)
        return switch test.work.kind {
        case .flop: String(format: "%.1f GFLOP/s", rate / 1e9)
        case .bytes: String(format: "%.1f GB/s", rate / 1e9)
        }
    }
}
