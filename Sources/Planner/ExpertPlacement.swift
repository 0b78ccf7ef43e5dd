import ExpertLoad

/// Where to put each MoE layer's experts, and which to replicate, from recorded load: the
/// algorithm of DeepSeek's EPLB (`conclave plan-placement`).
///
/// Per layer, from the tokens routed to each expert:
/// 1. **Replicate**: `redundant` times, give one more replica to the expert with the highest
///    load per replica (ties: the lowest id), never more replicas than ranks it could go to.
/// 2. **Pack**: the replicas, each carrying its expert's load ÷ its replica count, heaviest
///    first (ties: expert id, then replica), each onto the least-loaded rank that has room and
///    does not hold that expert yet (ties: the lowest rank); every rank gets the same number
///    of replicas, `(experts + redundant) ÷ ranks`.
///
/// With `nodes` > 1 and expert groups that divide among them (`n_group % nodes == 0`), the
/// hierarchical policy of EPLB runs instead: first the groups are packed onto the nodes
/// (balancing group load, the same number of groups per node), so a group's experts share a
/// node, as group-limited routing wants; then each node replicates its own experts
/// (`redundant ÷ nodes` each) and packs them onto its ranks. Otherwise the global policy
/// places over all ranks. Node `k` holds expert ranks `k · ranks/nodes ..< (k+1) · ranks/nodes`.
///
/// Predicted load of a rank: the sum over its replicas of expert load ÷ replica count (the
/// router splits a replicated expert's tokens evenly among its replicas). Balancedness: mean
/// rank load ÷ the largest, as SGLang and vLLM report it.
public struct ExpertPlacement: Sendable, Equatable {
    /// What to place.
    public struct Request: Sendable, Equatable {
        public var routedExperts: Int
        public var expertRanks: Int
        public var redundant: Int
        public var groups: Int
        public var nodes: Int

        public init(routedExperts: Int, expertRanks: Int, redundant: Int, groups: Int = 1, nodes: Int = 1) {
            self.routedExperts = routedExperts
            self.expertRanks = expertRanks
            self.redundant = redundant
            self.groups = groups
            self.nodes = nodes
        }

        /// Replicas per expert rank.
        public var slotsPerRank: Int { (routedExperts + redundant) / expertRanks }

        /// EPLB's hierarchical policy applies: several nodes, and groups that divide among them.
        public var isHierarchical: Bool { nodes > 1 && groups % nodes == 0 }
    }

    public enum Policy: String, Sendable { case global, hierarchical }

    /// One layer's plan.
    public struct Layer: Sendable, Equatable {
        /// The MoE layer, or nil for the placement planned from every layer's load together.
        public var layer: Int?
        /// Per expert rank (index 0..<expertRanks), the expert ids it holds, ascending.
        public var experts: [[Int]]
        /// Per expert id, its replica count.
        public var replicas: [Int]
        /// Predicted tokens per expert rank: planned, and with the default contiguous split and no replicas.
        public var load: [Double]
        public var defaultLoad: [Double]

        public var balancedness: Double { Balancedness.of(load) }
        public var defaultBalancedness: Double { Balancedness.of(defaultLoad) }
    }

    public let request: Request
    public var policy: Policy { request.isHierarchical ? .hierarchical : .global }

    public init(_ request: Request) throws(PlacementError) {
        let e = request.routedExperts, n = request.expertRanks, r = request.redundant, m = request.nodes
        guard e > 0 else { throw .noExperts }
        guard n >= 1 else { throw .expertRanks(n) }
        guard r >= 0 else { throw .redundantNegative(r) }
        guard m >= 1, n % m == 0 else { throw .nodes(m, expertRanks: n) }
        guard (e + r) % n == 0 else {
            let below = r - (e + r) % n, above = below + n
            throw .slotsUneven(routedExperts: e, redundant: r, expertRanks: n, suggestions: (below >= 0 ? [below] : []) + [above])
        }
        // A rank holds an expert once: at most `ranks` replicas of each (per node, hierarchically).
        let domainRanks = request.isHierarchical ? n / m : n
        let domains = request.isHierarchical ? m : 1
        let domainExperts = e / domains
        guard (e + r) / domains <= domainExperts * domainRanks else {
            throw .tooManyReplicas(redundant: r, most: domains * domainExperts * domainRanks - e)
        }
        self.request = request
    }

    /// The plan for one layer's tokens per expert (`loads.count == routedExperts`).
    public func plan(loads: [Double], layer: Int?) -> Layer {
        precondition(loads.count == request.routedExperts, "\(loads.count) loads for \(request.routedExperts) experts")
        let e = request.routedExperts, n = request.expertRanks
        var experts = [[Int]](repeating: [], count: n)
        var replicas = [Int](repeating: 0, count: e)
        if request.isHierarchical {
            let m = request.nodes, groupSize = e / request.groups, ranksPerNode = n / m
            let groupLoads = (0..<request.groups).map { g in loads[g * groupSize ..< (g + 1) * groupSize].reduce(0, +) }
            let nodeOfGroup = Self.pack(weights: groupLoads, packs: m, capacity: request.groups / m, item: { $0 }).pack
            for node in 0..<m {
                let members = (0..<request.groups).filter { nodeOfGroup[$0] == node }.flatMap { g in Array(g * groupSize ..< (g + 1) * groupSize) }
                let counts = Self.replicate(loads: members.map { loads[$0] }, extra: request.redundant / m, cap: ranksPerNode)
                let placed = Self.placeReplicas(experts: members, loads: members.map { loads[$0] }, counts: counts,
                                                ranks: ranksPerNode, slots: request.slotsPerRank)
                for (i, ids) in placed.enumerated() { experts[node * ranksPerNode + i] = ids }
                for (i, id) in members.enumerated() { replicas[id] = counts[i] }
            }
        } else {
            replicas = Self.replicate(loads: loads, extra: request.redundant, cap: n)
            experts = Self.placeReplicas(experts: Array(0..<e), loads: loads, counts: replicas, ranks: n, slots: request.slotsPerRank)
        }
        let load = experts.map { ids in ids.reduce(0) { $0 + loads[$1] / Double(replicas[$1]) } }
        let defaultLoad = Self.contiguous(experts: e, ranks: n).map { ids in ids.reduce(0) { $0 + loads[$1] } }
        return Layer(layer: layer, experts: experts.map { $0.sorted() }, replicas: replicas, load: load, defaultLoad: defaultLoad)
    }

    /// A plan per recorded layer, and one from their summed load (for layers a layout does not list).
    public func plan(_ record: ExpertLoadRecord) -> (layers: [Layer], overall: Layer) {
        let layers = record.layers.map { plan(loads: $0.tokensPerExpert.map(Double.init), layer: $0.layer) }
        var total = [Double](repeating: 0, count: request.routedExperts)
        for l in record.layers { for (i, c) in l.tokensPerExpert.enumerated() { total[i] += Double(c) } }
        return (layers, plan(loads: total, layer: nil))
    }

    /// The default layout's split (`ClusterLayout.derived`): contiguous blocks in rank order, the
    /// first ranks one more when uneven.
    public static func contiguous(experts: Int, ranks: Int) -> [[Int]] {
        var next = 0
        return (0..<ranks).map { i in
            let share = experts / ranks + (i < experts % ranks ? 1 : 0)
            defer { next += share }
            return Array(next ..< next + share)
        }
    }

    // MARK: the two steps

    /// Replica counts: one each, then `extra` more, each to the expert with the highest load per
    /// replica (ties: the lowest index) among those below `cap`.
    static func replicate(loads: [Double], extra: Int, cap: Int) -> [Int] {
        var counts = [Int](repeating: 1, count: loads.count)
        for _ in 0..<extra {
            var best = -1
            for i in loads.indices where counts[i] < cap {
                if best < 0 || loads[i] / Double(counts[i]) > loads[best] / Double(counts[best]) { best = i }
            }
            counts[best] += 1
        }
        return counts
    }

    /// Replicas of `experts` (with `counts[i]` replicas of `experts[i]`, each carrying
    /// `loads[i] / counts[i]`) packed onto `ranks` ranks of `slots` replicas each; per rank the
    /// expert ids it holds, in the order packed.
    static func placeReplicas(experts: [Int], loads: [Double], counts: [Int], ranks: Int, slots: Int) -> [[Int]] {
        var items: [(expert: Int, weight: Double)] = []
        for (i, id) in experts.enumerated() {
            for _ in 0..<counts[i] { items.append((id, loads[i] / Double(counts[i]))) }
        }
        return pack(weights: items.map(\.weight), packs: ranks, capacity: slots, item: { items[$0].expert }).members
            .map { $0.map { items[$0].expert } }
    }

    /// Balanced packing as EPLB does it: items heaviest first (ties: the lower index) each onto
    /// the lightest pack with room that holds no item of the same kind (`item`), ties to the
    /// lower pack. When every pack with room already holds the item's kind, the lightest of
    /// them trades an item of another kind with a pack that does not. Returns each item's pack
    /// and each pack's items.
    static func pack(weights: [Double], packs: Int, capacity: Int, item kind: (Int) -> Int) -> (pack: [Int], members: [[Int]]) {
        precondition(weights.count == packs * capacity, "\(weights.count) items for \(packs) packs of \(capacity)")
        let order = weights.indices.sorted { weights[$0] > weights[$1] || (weights[$0] == weights[$1] && $0 < $1) }
        var packOf = [Int](repeating: -1, count: weights.count)
        var members = [[Int]](repeating: [], count: packs)
        var load = [Double](repeating: 0, count: packs)
        func holds(_ p: Int, _ k: Int) -> Bool { members[p].contains { kind($0) == k } }
        func put(_ i: Int, _ p: Int) {
            members[p].append(i)
            load[p] += weights[i]
            packOf[i] = p
        }
        for i in order {
            let open = (0..<packs).filter { members[$0].count < capacity }
            let best = { (candidates: [Int]) in candidates.min { load[$0] < load[$1] || (load[$0] == load[$1] && $0 < $1) } }
            if let p = best(open.filter { !holds($0, kind(i)) }) {
                put(i, p)
                continue
            }
            // Every open pack holds this kind: move an item of another kind from a pack without it into the lightest open pack.
            let p = best(open)!
            var moved = false
            for q in 0..<packs where q != p && !holds(q, kind(i)) {
                if let j = members[q].first(where: { !holds(p, kind($0)) }) {
                    members[q].removeAll { $0 == j }
                    load[q] -= weights[j]
                    put(j, p)
                    put(i, q)
                    moved = true
                    break
                }
            }
            if !moved { put(i, p) }
        }
        return (packOf, members)
    }
}

/// Why a placement cannot be planned: one line saying what to change.
public enum PlacementError: Error, Sendable, Equatable, CustomStringConvertible {
    case noExperts
    case expertRanks(Int)
    case redundantNegative(Int)
    case nodes(Int, expertRanks: Int)
    /// Replicas do not divide evenly over the expert ranks.
    case slotsUneven(routedExperts: Int, redundant: Int, expertRanks: Int, suggestions: [Int])
    /// More replicas than ranks to hold them (a rank holds an expert once).
    case tooManyReplicas(redundant: Int, most: Int)

    public var description: String {
        switch self {
        case .noExperts:
            "the load file's model has no routed experts"
        case .expertRanks(let n):
            "--expert-ranks \(n): at least one expert rank is needed"
        case .redundantNegative(let r):
            "--redundant \(r): the number of redundant experts is 0 or more"
        case .nodes(let m, let n):
            "--nodes \(m) does not divide --expert-ranks \(n): each node holds the same number of expert ranks"
        case .slotsUneven(let e, let r, let n, let suggestions):
            "\(e) experts + \(r) redundant = \(e + r) replicas do not divide over \(n) expert ranks (each holds the same number); use --redundant "
                + suggestions.map(String.init).joined(separator: " or ")
        case .tooManyReplicas(let r, let most):
            "--redundant \(r) gives some expert more replicas than there are ranks to hold them (a rank holds an expert once); at most \(most) here"
        }
    }
}
