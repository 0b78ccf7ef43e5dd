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
        /// Hidden states between the router and its attention ranks (in and back out), per step.
        public var attentionBytes: [Int] = []
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
    /// Each router's traffic (rank 0's and every other router's), collected at shutdown.
    public var routers: [RouterTraffic] = []

    public init(worldSize: Int, routedExperts: Int) {
        self.worldSize = worldSize
        self.routedExperts = routedExperts
        bytes = Array(repeating: Array(repeating: 0, count: worldSize), count: worldSize)
    }

    /// One step of one MoE layer: `combine` is already net of the expert FFN time.
    func record(layer: Int, dispatch: Double, combine: Double, expert: Double, dispatchBytes: Int, combineBytes: Int,
                tokens: Int, experts: [Int32], rowsPerRank: [Int: Int], pairsPerRank: [Int: Int], attentionBytes: Int = 0) {
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
        layers[layer]!.attentionBytes.append(attentionBytes)
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
        if !routers.isEmpty {
            out += "# routers, per MoE layer and step: bytes through each router (hidden states from and to its attention ranks, dispatch, combine)\n"
            out += "  \(pad("router", 8))\(pad("serves", 8))\(pad("layer", 6, right: true))\(pad("steps", 7, right: true))\(pad("tokens", 8, right: true))"
            out += "\(pad("attention B", 13, right: true))\(pad("dispatch B", 12, right: true))\(pad("combine B", 12, right: true))"
            out += "\(pad("B/token", 10, right: true))\(pad("dispatch us", 13, right: true))\(pad("combine us", 12, right: true))\n"
            for r in routers {
                for l in r.layers {
                    let n = Double(max(l.steps, 1))
                    out += "  \(pad("r\(r.rank)", 8))\(pad(r.attentionRanks.map { "r\($0)" }.joined(separator: ","), 8))"
                    out += "\(pad(String(l.layer), 6, right: true))\(pad(String(l.steps), 7, right: true))\(pad((Double(l.tokens) / n).formatted(1), 8, right: true))"
                    out += "\(pad(String(Int(Double(l.attentionBytes) / n)), 13, right: true))\(pad(String(Int(Double(l.dispatchBytes) / n)), 12, right: true))"
                    out += "\(pad(String(Int(Double(l.combineBytes) / n)), 12, right: true))\(pad(l.bytesPerToken.formatted(0), 10, right: true))"
                    out += "\(pad((l.dispatchSeconds / n * 1e6).formatted(1), 13, right: true))\(pad((l.combineSeconds / n * 1e6).formatted(1), 12, right: true))\n"
                }
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
        out["routers"] = routers.map { r -> [String: Any] in
            ["rank": r.rank, "attention_ranks": r.attentionRanks, "layers": r.layers.map { l -> [String: Any] in
                let n = Double(max(l.steps, 1))
                return ["layer": l.layer, "steps": l.steps, "tokens_per_step": Double(l.tokens) / n,
                        "attention_bytes_per_step": Double(l.attentionBytes) / n, "dispatch_bytes_per_step": Double(l.dispatchBytes) / n,
                        "combine_bytes_per_step": Double(l.combineBytes) / n, "bytes_per_token": l.bytesPerToken,
                        "dispatch_mean_us": l.dispatchSeconds / n * 1e6, "combine_mean_us": l.combineSeconds / n * 1e6]
            }]
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

/// One router's traffic over a run, per MoE layer (sums over the steps sampled): what the
/// profile's routers table shows. A router other than rank 0 sends its own to rank 0 at
/// shutdown, with the counts rank 0 folds into the per-layer tables and the bytes matrix.
public struct RouterTraffic: Codable, Sendable {
    public struct Layer: Codable, Sendable {
        public var layer: Int
        public var steps: Int
        public var tokens: Int
        /// Hidden states received from the router's attention ranks and sent back to them.
        public var attentionBytes: Int
        public var dispatchBytes: Int
        public var combineBytes: Int
        public var dispatchSeconds: Double
        public var combineSeconds: Double

        /// Bytes through the router (attention in and out, dispatch, combine) per token.
        public var bytesPerToken: Double {
            tokens == 0 ? 0 : Double(attentionBytes + dispatchBytes + combineBytes) / Double(tokens)
        }
    }

    public var rank: Int
    public var attentionRanks: [Int]
    public var layers: [Layer]
    /// Per MoE layer: tokens per expert, rows and (token, expert) pairs per expert rank.
    var tokensPerExpert: [Int: [Int]]
    var rowsPerRank: [Int: [Int: Int]]
    var pairsPerRank: [Int: [Int: Int]]
    /// Bytes the router sent and received, rank × rank.
    var bytes: [[Int]]
}

extension AllToAllProfile {
    /// This profile's router traffic, the router being `rank` serving `attentionRanks`.
    func traffic(rank: Int, attentionRanks: [Int]) -> RouterTraffic {
        let sorted = layers.sorted { $0.key < $1.key }
        return RouterTraffic(
            rank: rank, attentionRanks: attentionRanks,
            layers: sorted.map { index, l in
                RouterTraffic.Layer(layer: index, steps: l.tokens.count, tokens: l.tokens.reduce(0, +),
                                    attentionBytes: l.attentionBytes.reduce(0, +), dispatchBytes: l.dispatchBytes.reduce(0, +),
                                    combineBytes: l.combineBytes.reduce(0, +), dispatchSeconds: l.dispatchSeconds.reduce(0, +),
                                    combineSeconds: l.combineSeconds.reduce(0, +))
            },
            tokensPerExpert: layers.mapValues(\.tokensPerExpert), rowsPerRank: layers.mapValues(\.rowsPerRank),
            pairsPerRank: layers.mapValues(\.pairsPerRank), bytes: bytes)
    }

    /// Folds another router's counts into the per-layer tables (tokens per expert, rows per
    /// expert rank: the whole cluster's load) and its bytes into the matrix. Timings stay rank 0's.
    func merge(_ other: RouterTraffic) {
        for (layer, counts) in other.tokensPerExpert {
            if layers[layer] == nil { layers[layer] = Layer(tokensPerExpert: Array(repeating: 0, count: routedExperts)) }
            for (e, n) in counts.enumerated() where e < routedExperts { layers[layer]!.tokensPerExpert[e] += n }
            for (r, n) in other.rowsPerRank[layer] ?? [:] { layers[layer]!.rowsPerRank[r, default: 0] += n }
            for (r, n) in other.pairsPerRank[layer] ?? [:] { layers[layer]!.pairsPerRank[r, default: 0] += n }
        }
        for (i, row) in other.bytes.enumerated() where i < worldSize {
            for (j, n) in row.enumerated() where j < worldSize { bytes[i][j] += n }
        }
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
        attentionBytes.removeFirst(drop)
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
