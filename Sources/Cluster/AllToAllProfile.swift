import ControlPlane
import ExpertLoad
import Foundation

/// What the all-to-all cost, per MoE layer, over a run: collected on the router, printed
/// at the end as OSU-style tables and written as JSON with `--profile-out`.
public final class AllToAllProfile {
    /// Per-step samples kept per layer: a server runs for days, so timings describe the
    /// most recent steps while counts (steps, tokens per expert, rows per rank) cover the run.
    public static let sampleLimit = 100_000

    /// One MoE layer's samples, one per recent step that reached it.
    public struct Layer {
        /// Steps that reached this layer over the whole run.
        public var steps = 0
        public var dispatchSeconds: [Double] = []
        /// Combine wall time minus the slowest expert rank's FFN time: the transfer.
        public var combineSeconds: [Double] = []
        public var expertSeconds: [Double] = []
        public var dispatchBytes: [Int] = []
        public var combineBytes: [Int] = []
        public var tokens: [Int] = []
        /// Tokens routed to each expert id, summed over steps.
        public var tokensPerExpert: [Int]
        /// Rows each expert rank (world rank) received, summed over steps.
        public var rowsPerRank: [Int: Int] = [:]
        /// (token, expert) outputs each expert rank returned, summed over steps.
        public var pairsPerRank: [Int: Int] = [:]
    }

    public let worldSize: Int
    public private(set) var layers: [Int: Layer] = [:]
    /// Bytes sent from world rank i to world rank j over the run (activations only).
    public private(set) var bytes: [[Int]]
    let routedExperts: Int
    /// Raw `MPI_Alltoallv` seconds for the same element counts, measured at the end.
    public var baseline: (dispatch: Double, combine: Double)?
    /// Every rank's activity over the run, with its role, collected at shutdown.
    public var activity: [(stats: RankStats, role: String)] = []

    public init(worldSize: Int, routedExperts: Int) {
        self.worldSize = worldSize
        self.routedExperts = routedExperts
        bytes = Array(repeating: Array(repeating: 0, count: worldSize), count: worldSize)
    }

    /// One step of one MoE layer: `combine` is already net of the expert FFN time.
    func record(layer: Int, dispatch: Double, combine: Double, expert: Double, dispatchBytes: Int, combineBytes: Int,
                tokens: Int, experts: [Int32], rowsPerRank: [Int: Int], pairsPerRank: [Int: Int]) {
        // Mutated in place: copying the sample arrays out and back would make each step cost O(steps).
        if layers[layer] == nil { layers[layer] = Layer(tokensPerExpert: Array(repeating: 0, count: routedExperts)) }
        if layers[layer]!.tokens.count >= 2 * Self.sampleLimit { layers[layer]!.dropOldestSamples(keeping: Self.sampleLimit) }
        layers[layer]!.steps += 1
        layers[layer]!.dispatchSeconds.append(dispatch)
        layers[layer]!.combineSeconds.append(combine)
        layers[layer]!.expertSeconds.append(expert)
        layers[layer]!.dispatchBytes.append(dispatchBytes)
        layers[layer]!.combineBytes.append(combineBytes)
        layers[layer]!.tokens.append(tokens)
        for e in experts { layers[layer]!.tokensPerExpert[Int(e)] += 1 }
        for (r, n) in rowsPerRank { layers[layer]!.rowsPerRank[r, default: 0] += n }
        for (r, n) in pairsPerRank { layers[layer]!.pairsPerRank[r, default: 0] += n }
    }

    func addBytes(from: Int, to: Int, _ n: Int) { bytes[from][to] += n }

    /// Mean rows per step and MoE layer that each expert rank (world rank) received:
    /// what the baseline all-to-all moves.
    var meanRowsPerRank: [Int: Double] { meanPerStep(\.rowsPerRank) }

    /// Mean (token, expert) outputs per step and MoE layer that each expert rank returned.
    var meanPairsPerRank: [Int: Double] { meanPerStep(\.pairsPerRank) }

    private func meanPerStep(_ counts: KeyPath<Layer, [Int: Int]>) -> [Int: Double] {
        let samples = layers.values.reduce(0) { $0 + $1.steps }
        guard samples > 0 else { return [:] }
        var sums: [Int: Int] = [:]
        for l in layers.values { for (r, n) in l[keyPath: counts] { sums[r, default: 0] += n } }
        return sums.mapValues { Double($0) / Double(samples) }
    }

    public var text: String {
        var out = ""
        for (index, l) in layers.sorted(by: { $0.key < $1.key }) {
            let recent = l.steps > l.tokens.count ? " (timings: the last \(l.tokens.count))" : ""
            out += "# All-to-all, MoE layer \(index): \(l.steps) steps\(recent), \(mean(l.tokens.map(Double.init)).formatted(1)) tokens/step\n"
            out += "# \(pad("op", 12))\(pad("mean(us)", 11, right: true))\(pad("p50(us)", 11, right: true))\(pad("p99(us)", 11, right: true))\(pad("bytes/step", 13, right: true))\n"
            for (name, samples, b) in [("dispatch", l.dispatchSeconds, l.dispatchBytes), ("combine", l.combineSeconds, l.combineBytes),
                                       ("expert FFN", l.expertSeconds, [])] {
                let us = samples.map { $0 * 1e6 }
                out += "  \(pad(name, 12))\(pad(mean(us).formatted(1), 11, right: true))\(pad(percentile(us, 50).formatted(1), 11, right: true))"
                out += "\(pad(percentile(us, 99).formatted(1), 11, right: true))\(pad(b.isEmpty ? "-" : String(Int(mean(b.map(Double.init)))), 13, right: true))\n"
            }
            out += "  tokens per expert: " + l.tokensPerExpert.enumerated().map { "\($0.offset):\($0.element)" }.joined(separator: " ") + "\n"
            let loads = l.rowsPerRank.sorted { $0.key < $1.key }
            let m = mean(loads.map { Double($0.value) })
            out += "  rows per expert rank: " + loads.map { "r\($0.key):\($0.value)" }.joined(separator: " ")
            out += "  (balancedness mean/max \(l.balancedness.formatted(3)), imbalance max/mean \((m > 0 ? Double(loads.map(\.value).max() ?? 0) / m : 0).formatted(2)))\n"
        }
        if let b = baseline, let totals = totals {
            out += "# dispatch+combine per MoE layer \((totals * 1e6).formatted(1)) us vs raw MPI_Alltoallv of the same bytes "
            out += "\(((b.dispatch + b.combine) * 1e6).formatted(1)) us: ratio \((totals / max(b.dispatch + b.combine, 1e-12)).formatted(2))\n"
        }
        if !activity.isEmpty {
            out += "# rank activity: busy is computing, the rest of wall time waiting for peers\n"
            out += "  \(pad("rank", 6))\(pad("role", 11))\(pad("steps", 8, right: true))\(pad("prefill", 9, right: true))"
            out += "\(pad("decode", 8, right: true))\(pad("expert rows", 13, right: true))\(pad("busy s", 9, right: true))\(pad("wall s", 9, right: true))\(pad("busy", 7, right: true))\n"
            for (s, role) in activity {
                out += "  \(pad("r\(s.rank)", 6))\(pad(role, 11))\(pad(String(s.steps), 8, right: true))\(pad(String(s.prefillTokens), 9, right: true))"
                out += "\(pad(String(s.decodeTokens), 8, right: true))\(pad(String(s.expertTokens), 13, right: true))"
                out += "\(pad(s.busySeconds.formatted(3), 9, right: true))\(pad(s.wallSeconds.formatted(3), 9, right: true))"
                out += "\(pad((100 * s.busySeconds / max(s.wallSeconds, 1e-9)).formatted(0) + "%", 7, right: true))\n"
            }
        }
        out += "# bytes sent, rank × rank (row: from, column: to)\n"
        out += "  " + pad("", 6) + (0..<worldSize).map { pad("r\($0)", 12, right: true) }.joined() + "\n"
        for (i, row) in bytes.enumerated() {
            out += "  " + pad("r\(i)", 6) + row.map { pad(String($0), 12, right: true) }.joined() + "\n"
        }
        return out
    }

    /// Mean dispatch + combine transfer seconds per MoE layer and step.
    var totals: Double? {
        let all = layers.values.flatMap { zip($0.dispatchSeconds, $0.combineSeconds).map { $0 + $1 } }
        return all.isEmpty ? nil : mean(all)
    }

    public var json: [String: Any] {
        var out: [String: Any] = ["world_size": worldSize, "bytes_matrix": bytes]
        out["layers"] = layers.sorted(by: { $0.key < $1.key }).map { index, l -> [String: Any] in
            func stats(_ s: [Double]) -> [String: Double] {
                ["mean_us": mean(s) * 1e6, "p50_us": percentile(s, 50) * 1e6, "p99_us": percentile(s, 99) * 1e6]
            }
            let loads = l.rowsPerRank.values.map(Double.init)
            return ["layer": index, "steps": l.steps, "sampled_steps": l.tokens.count, "dispatch": stats(l.dispatchSeconds), "combine": stats(l.combineSeconds),
                    "expert_ffn": stats(l.expertSeconds), "dispatch_bytes_per_step": mean(l.dispatchBytes.map(Double.init)),
                    "combine_bytes_per_step": mean(l.combineBytes.map(Double.init)), "tokens_per_step": mean(l.tokens.map(Double.init)),
                    "tokens_per_expert": l.tokensPerExpert,
                    "rows_per_expert_rank": Dictionary(uniqueKeysWithValues: l.rowsPerRank.map { (String($0.key), $0.value) }),
                    "load_imbalance": mean(loads) > 0 ? (loads.max() ?? 0) / mean(loads) : 0, "balancedness": l.balancedness]
        }
        out["rank_activity"] = activity.map { s, role -> [String: Any] in
            ["rank": s.rank, "role": role, "steps": s.steps, "prefill_tokens": s.prefillTokens, "decode_tokens": s.decodeTokens,
             "expert_rows": s.expertTokens, "busy_seconds": s.busySeconds, "wall_seconds": s.wallSeconds]
        }
        if let b = baseline, let t = totals {
            out["baseline"] = ["raw_alltoallv_us": (b.dispatch + b.combine) * 1e6, "dispatch_combine_us": t * 1e6,
                               "ratio": t / max(b.dispatch + b.combine, 1e-12)]
        }
        return out
    }
}

extension AllToAllProfile.Layer {
    /// Mean rows per expert rank ÷ the most any expert rank received, over the run (1 = even):
    /// the balancedness SGLang and vLLM report.
    public var balancedness: Double { Balancedness.of(rowsPerRank.values) }

    mutating func dropOldestSamples(keeping n: Int) {
        let drop = tokens.count - n
        guard drop > 0 else { return }
        dispatchSeconds.removeFirst(drop)
        combineSeconds.removeFirst(drop)
        expertSeconds.removeFirst(drop)
        dispatchBytes.removeFirst(drop)
        combineBytes.removeFirst(drop)
        tokens.removeFirst(drop)
    }
}

private func mean(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.reduce(0, +) / Double(v.count) }

private func percentile(_ v: [Double], _ p: Double) -> Double {
    guard !v.isEmpty else { return 0 }
    let s = v.sorted()
    return s[min(s.count - 1, Int((p / 100 * Double(s.count - 1)).rounded()))]
}

private func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    s.count >= width ? s + " " : (right ? String(repeating: " ", count: width - s.count) + s : s + String(repeating: " ", count: width - s.count))
}

private extension Double {
    func formatted(_ digits: Int) -> String { String(format: "%.\(digits)f", self) }
}
