import Foundation

/// The cluster to size: identical nodes joined by links of one rate.
public struct ClusterSpec: Sendable, Equatable {
    public var nodes: Int
    public var nodeMemory: Double
    /// Streaming memory bandwidth of one node, bytes per second.
    public var nodeBandwidth: Double
    /// Bytes per second each way on a node's link.
    public var linkRate: Double
    /// Positions per sequence the cache must hold, and sequences at once.
    public var context: Int
    public var concurrent: Int
    /// Memory kept free on every node for the OS, the runtime and activation buffers.
    public var reservedPerNode: Double

    public init(nodes: Int, nodeMemory: Double, nodeBandwidth: Double, linkRate: Double, context: Int, concurrent: Int,
                reservedPerNode: Double = 8 * Double(1 << 30)) {
        self.nodes = nodes
        self.nodeMemory = nodeMemory
        self.nodeBandwidth = nodeBandwidth
        self.linkRate = linkRate
        self.context = context
        self.concurrent = concurrent
        self.reservedPerNode = reservedPerNode
    }

    var usablePerNode: Double { nodeMemory - reservedPerNode }
}

/// What one node runs and holds.
public struct NodePlan: Sendable, Equatable {
    public var node: Int
    public var router: Bool
    public var attention: Bool
    /// Routed experts its expert rank holds (every MoE layer), as expert-id ranges; replicas included.
    public var experts: [ClosedRange<Int>]
    public var weightBytes: Double
    public var cacheBytes: Double
    public var freeBytes: Double

    public var expertCount: Int { experts.reduce(0) { $0 + $1.count } }
    /// Ranks on the node: router, attention, expert, in that order.
    public var ranks: Int { (router ? 1 : 0) + (attention ? 1 : 0) + (expertCount > 0 ? 1 : 0) }
}

/// Where one decode step's time goes, in seconds, and what it yields.
public struct DecodePrediction: Sendable, Equatable {
    public var attentionSeconds: Double
    public var expertSeconds: Double
    public var exchangeSeconds: Double
    /// Bytes through the router's link per step, summed over the hops.
    public var exchangeBytes: Double

    public var stepSeconds: Double { attentionSeconds + expertSeconds + exchangeSeconds }
}

/// A layout for a cluster, the memory it needs per node, and its predicted decode speed.
public struct CapacityPlan: Sendable, Equatable {
    public var spec: ClusterSpec
    public var footprint: ModelFootprint
    public var model: CostModel
    public var nodes: [NodePlan]
    public var attentionRanks: Int
    /// Expert replicas beyond one copy of each expert (room left for EPLB-style redundancy).
    public var redundantExperts: Int
    public var prediction: DecodePrediction

    public var tokensPerSecond: Double { Double(spec.concurrent) / prediction.stepSeconds }

    /// Why a cluster cannot hold the model.
    public struct Shortfall: Error, CustomStringConvertible {
        public let bytes: Double
        public let reason: String
        public var description: String { "the cluster cannot hold the model: \(reason); short by \(Self.format(bytes))" }

        static func format(_ bytes: Double) -> String { String(format: "%.1f GiB (%.0f bytes)", bytes / Double(1 << 30), bytes) }
    }

    /// The layout with the best predicted decode throughput among those that fit: every
    /// attention-rank count from 1 to the node count is tried (attention ranks split the
    /// latent cache; each holds the non-expert weights), experts fill the memory left.
    public static func best(for spec: ClusterSpec, footprint: ModelFootprint, model: CostModel) throws(Shortfall) -> CapacityPlan {
        var plans: [CapacityPlan] = []
        var smallest: Shortfall?
        for attention in 1...max(spec.nodes, 1) {
            do {
                plans.append(try CapacityPlan(spec: spec, footprint: footprint, model: model, attentionRanks: attention))
            } catch {
                if smallest == nil || error.bytes < smallest!.bytes { smallest = error }
            }
        }
        guard let best = plans.max(by: { $0.tokensPerSecond < $1.tokensPerSecond }) else { throw smallest! }
        return best
    }

    /// The plan with `attentionRanks` attention ranks on nodes 0..<attentionRanks (the router
    /// on node 0) and one expert rank per node holding experts in proportion to its free memory.
    public init(spec: ClusterSpec, footprint f: ModelFootprint, model: CostModel, attentionRanks: Int) throws(Shortfall) {
        guard spec.nodes >= 1, attentionRanks >= 1, attentionRanks <= spec.nodes else {
            throw Shortfall(bytes: 0, reason: "\(attentionRanks) attention ranks need as many nodes (have \(spec.nodes))")
        }
        let totalCache = Double(spec.concurrent) * Double(spec.context) * Double(f.cacheBytesPerPosition)
        let cacheShare = totalCache / Double(attentionRanks)
        let expertAllLayers = Double(f.expertBytes * f.moeLayers)
        var nodes: [NodePlan] = []
        for n in 0..<spec.nodes {
            let router = n == 0, attention = n < attentionRanks
            let weights = (router ? Double(f.routerBytes) : 0) + (attention ? Double(f.attentionRankBytes) : 0)
            let cache = attention ? cacheShare : 0
            nodes.append(NodePlan(node: n, router: router, attention: attention, experts: [], weightBytes: weights, cacheBytes: cache,
                                  freeBytes: spec.usablePerNode - weights - cache))
        }
        // What does not fit: attention nodes over their memory, and experts beyond the slots left.
        let attentionOverflow = nodes.reduce(0) { $0 + max(-$1.freeBytes, 0) }
        let capacity = nodes.map { Int((max($0.freeBytes, 0) / expertAllLayers).rounded(.down)) }
        let slots = capacity.reduce(0, +)
        let expertOverflow = Double(max(f.routedExperts - slots, 0)) * expertAllLayers
        guard attentionOverflow == 0, expertOverflow == 0 else {
            var reasons: [String] = []
            if attentionOverflow > 0 {
                reasons.append("an attention rank's weights (\(Shortfall.format(Double(f.attentionRankBytes)))) and its share of the latent cache "
                               + "(\(Shortfall.format(cacheShare))) exceed a node's usable memory (\(Shortfall.format(spec.usablePerNode)))")
            }
            if expertOverflow > 0 {
                reasons.append("the memory left holds \(slots) of \(f.routedExperts) routed experts (\(Shortfall.format(expertAllLayers)) each, every layer)")
            }
            throw Shortfall(bytes: attentionOverflow + expertOverflow,
                            reason: "with \(attentionRanks) attention rank(s), " + reasons.joined(separator: "; "))
        }
        // One copy of every expert, split in proportion to capacity; the rest is room for replicas.
        var counts = capacity.map { Int((Double($0) / Double(slots) * Double(f.routedExperts)).rounded(.down)) }
        var i = 0
        while counts.reduce(0, +) < f.routedExperts {
            if counts[i] < capacity[i] { counts[i] += 1 }
            i = (i + 1) % counts.count
        }
        var next = 0
        for n in nodes.indices where counts[n] > 0 {
            nodes[n].experts = [next...(next + counts[n] - 1)]
            next += counts[n]
            nodes[n].weightBytes += Double(counts[n]) * expertAllLayers
            nodes[n].freeBytes -= Double(counts[n]) * expertAllLayers
        }
        self.spec = spec
        footprint = f
        self.model = model
        self.nodes = nodes
        self.attentionRanks = attentionRanks
        redundantExperts = slots - f.routedExperts
        prediction = Self.predict(spec: spec, footprint: f, model: model, layout: DecodeLayout(
            attentionRanks: attentionRanks, remoteAttentionRanks: attentionRanks - 1,
            remoteExpertNodes: counts.dropFirst().filter { $0 > 0 }.count,
            busiestExpertShare: Double(counts.max()!) / Double(f.routedExperts)))
    }

    /// One decode step of every sequence, layer after layer: attention ranks stream their
    /// weights and their sequences' caches (half the context on average), the busiest expert
    /// node streams its share of the experts the step activates, every layer pays a fixed
    /// overhead, and every MoE layer one all-to-all through the router's link.
    public static func predict(spec: ClusterSpec, footprint f: ModelFootprint, model: CostModel, layout: DecodeLayout) -> DecodePrediction {
        let bandwidth = spec.nodeBandwidth * model.memoryEfficiency
        let sequences = Double(spec.concurrent)
        let perRank = (sequences / Double(layout.attentionRanks)).rounded(.up)
        let cacheRead = perRank * Double(spec.context) / 2 * Double(f.cacheBytesPerPosition)
        let attention = (Double(f.attentionReadBytes) + cacheRead) / bandwidth + Double(f.layers) * model.layerOverhead
        // Distinct experts a layer activates when every sequence picks k of E.
        let e = Double(f.routedExperts), k = Double(f.expertsPerToken)
        let activated = e * (1 - pow(1 - k / e, sequences))
        let experts = activated * layout.busiestExpertShare * Double(f.expertBytes) * Double(f.moeLayers) / bandwidth
        // f32 rows through the router's link, hop after hop: hidden states of remote attention
        // ranks in, dispatched rows (with routing) out to remote expert nodes — at most one per
        // token and node — their sums back in, the routed outputs back out.
        let h = Double(f.hiddenSize) * 4
        let remoteAttention = sequences * Double(layout.remoteAttentionRanks) / Double(layout.attentionRanks)
        let dispatchRows = sequences * min(k, Double(layout.remoteExpertNodes))
        let bytes = 2 * remoteAttention * h + dispatchRows * (2 * h + 2 * k * 4)
        let link: Double? = layout.remoteAttentionRanks + layout.remoteExpertNodes > 0 ? spec.linkRate : nil
        let exchange = Double(f.moeLayers) * model.exchangeSeconds(bytes: bytes, linkRate: link)
        return DecodePrediction(attentionSeconds: attention, expertSeconds: experts, exchangeSeconds: exchange,
                                exchangeBytes: bytes * Double(f.moeLayers))
    }
}

/// What a decode step's cost depends on in a layout.
public struct DecodeLayout: Sendable, Equatable {
    public var attentionRanks: Int
    /// Attention ranks on other nodes than the router's (their hidden states cross a link).
    public var remoteAttentionRanks: Int
    /// Nodes other than the router's that hold experts.
    public var remoteExpertNodes: Int
    /// Fraction of the routed experts on the node that holds the most.
    public var busiestExpertShare: Double

    public init(attentionRanks: Int, remoteAttentionRanks: Int, remoteExpertNodes: Int, busiestExpertShare: Double) {
        self.attentionRanks = attentionRanks
        self.remoteAttentionRanks = remoteAttentionRanks
        self.remoteExpertNodes = remoteExpertNodes
        self.busiestExpertShare = busiestExpertShare
    }
}
