import Foundation

extension CapacityPlan {
    /// The plan as an operator reads it: the layout table, then the prediction.
    public var text: String {
        func gib(_ bytes: Double) -> String { String(format: "%.1f", bytes / Double(1 << 30)) }
        let f = footprint, p = prediction
        var out = String(format: "model: %.1f B parameters; attention rank %@ GiB of weights; routed experts %@ GiB (%d × %d layers × %@ MiB); latent cache %.1f KiB per position\n",
                         Double(f.parameters) / 1e9, gib(Double(f.attentionRankBytes)), gib(Double(f.routedBytes)), f.routedExperts, f.moeLayers,
                         String(format: "%.1f", Double(f.expertBytes) / Double(1 << 20)), Double(f.cacheBytesPerPosition) / 1024)
        out += String(format: "cluster: %d nodes × %@ GiB (%@ GiB reserved each), %.0f GB/s memory, %.1f Gbit/s links; %d sequences × %d positions\n",
                      spec.nodes, gib(spec.nodeMemory), gib(spec.reservedPerNode), spec.nodeBandwidth / 1e9, spec.linkRate * 8 / 1e9,
                      spec.concurrent, spec.context)
        out += "\n| node | ranks | roles | experts | weights GiB | cache GiB | free GiB |\n|---:|---:|---|---|---:|---:|---:|\n"
        for n in nodes {
            let roles = [n.router ? "router" : nil, n.attention ? "attention" : nil, n.expertCount > 0 ? "expert" : nil].compactMap { $0 }
            let experts = n.experts.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
            out += "| \(n.node) | \(n.ranks) | \(roles.joined(separator: "+")) | \(experts.isEmpty ? "-" : experts) | \(gib(n.weightBytes)) | \(gib(n.cacheBytes)) | \(gib(n.freeBytes)) |\n"
        }
        out += "\n\(attentionRanks) attention rank(s); room for \(redundantExperts) redundant expert replicas.\n"
        out += String(format: "predicted decode: %.1f tokens/s for %d sequences (%.1f ms per token): attention %.1f ms, experts %.1f ms, all-to-all %.1f ms (%.1f MB per step through the router's link)\n",
                      tokensPerSecond, spec.concurrent, p.stepSeconds * 1000, p.attentionSeconds * 1000, p.expertSeconds * 1000,
                      p.exchangeSeconds * 1000, p.exchangeBytes / 1e6)
        out += String(format: "cost model (%@): memory efficiency %.2f, link efficiency %.2f, %.0f µs per message hop, %.0f µs per layer\n",
                      model.source, model.memoryEfficiency, model.linkEfficiency, model.messageLatency * 1e6, model.layerOverhead * 1e6)
        return out
    }

    public var jsonObject: [String: Any] {
        [
            "nodes": nodes.map { n -> [String: Any] in
                ["node": n.node, "router": n.router, "attention": n.attention, "experts": n.experts.map { [$0.lowerBound, $0.upperBound] },
                 "weight_bytes": n.weightBytes, "cache_bytes": n.cacheBytes, "free_bytes": n.freeBytes]
            },
            "attention_ranks": attentionRanks, "redundant_experts": redundantExperts,
            "tokens_per_second": tokensPerSecond, "step_seconds": prediction.stepSeconds,
            "attention_seconds": prediction.attentionSeconds, "expert_seconds": prediction.expertSeconds,
            "exchange_seconds": prediction.exchangeSeconds, "exchange_bytes": prediction.exchangeBytes,
            "parameters": footprint.parameters,
        ]
    }
}
