import Foundation
import Planner

/// Which rank plays which role, and which routed experts each expert rank holds.
///
/// Rank roles: ROUTERS (gating, all-to-all dispatch and combine for the attention ranks each
/// serves; rank 0 is always one and the only one that takes requests and plans), ATTENTION ranks (MLA,
/// dense layers, shared experts, LM head; data-parallel over sequences) and EXPERT ranks
/// (routed experts). An expert may be held by several expert ranks (its replicas), and a
/// MoE layer may place experts its own way (`layers`), as EPLB plans them; layers without a
/// placement of their own use the default one (`expertsByRank`).
/// A layout is validated completely when it is made, before any weight loads: every value
/// of this type places each rank `0..<worldSize` exactly once, the router on rank 0, and
/// each routed expert of every MoE layer on at least one expert rank.
public struct ClusterLayout: Sendable, Equatable {
    public enum Role: String, Sendable { case router, attention, expert }

    public let worldSize: Int
    /// Rank 0: the router that takes the requests and makes the step plans.
    public let router: Int
    /// Router rank → the attention ranks it serves (ascending); one entry, `router` serving
    /// every attention rank, for a layout with a single router.
    public let routers: [Int: [Int]]
    /// Ascending.
    public let attentionRanks: [Int]
    /// Ascending.
    public let expertRanks: [Int]
    /// The default placement: expert rank → the routed expert ids it holds (ascending) in every
    /// MoE layer without a placement of its own.
    public let expertsByRank: [Int: [Int]]
    /// MoE layer → its own placement (expert rank → ids, ascending; a rank it leaves out holds
    /// nothing in that layer). Empty for a layout that places every layer alike.
    public let layers: [Int: [Int: [Int]]]
    /// The model's routed experts (`n_routed_experts`): ids `0..<routedExperts`.
    public let routedExperts: Int
    /// The model's MoE layers when the layout was checked against them (nil: unknown).
    public let moeLayers: [Int]?
    /// Expert id → the ranks holding it (ascending), in the default placement and per layer.
    private let defaultReplicas: [[Int]]
    private let layerReplicas: [Int: [[Int]]]

    /// Validates a placement. `routedExperts` is the model's `n_routed_experts`; nil takes
    /// it as one more than the largest expert id placed (every id below must still be held).
    /// `layers` are per-MoE-layer placements; `moeLayers`, when given, are the model's MoE
    /// layers, which `layers` keys must be.
    /// `routers`, when given, maps each router rank to the attention ranks it serves (rank 0
    /// among them); nil is one router, `router`, serving every attention rank.
    public init(worldSize: Int, router: Int, routers: [Int: [Int]]? = nil, attentionRanks: [Int], expertsByRank: [Int: [Int]],
                layers: [Int: [Int: [Int]]] = [:], routedExperts: Int? = nil, moeLayers: [Int]? = nil) throws(LayoutError) {
        try self.init(worldSize: worldSize, router: router, routers: routers, attentionRanks: attentionRanks,
                      expertsByRank: expertsByRank, layers: layers, routedExperts: routedExperts, moeLayers: moeLayers, source: "layout")
    }

    /// `source` names where the placement came from (a file, or the default layout) in errors.
    init(worldSize: Int, router: Int, routers: [Int: [Int]]? = nil, attentionRanks: [Int], expertsByRank: [Int: [Int]],
         layers: [Int: [Int: [Int]]] = [:], routedExperts: Int?, moeLayers: [Int]? = nil, source: String) throws(LayoutError) {
        guard worldSize >= 3 else { throw .tooFewRanks(worldSize: worldSize, source: source) }
        guard !attentionRanks.isEmpty else { throw .noAttentionRank(source: source) }
        guard !expertsByRank.isEmpty else { throw .noExpertRank(source: source) }
        let routers = routers ?? [router: attentionRanks]

        // Every rank 0..<worldSize exactly once.
        var roles: [Int: [Role]] = [:]
        for rank in routers.keys { roles[rank, default: []].append(.router) }
        for rank in attentionRanks { roles[rank, default: []].append(.attention) }
        for rank in expertsByRank.keys { roles[rank, default: []].append(.expert) }
        let missing = (0..<worldSize).filter { roles[$0] == nil }
        let outOfRange = roles.keys.filter { $0 < 0 || $0 >= worldSize }.sorted()
        let duplicated = roles.filter { $0.value.count > 1 }
        if !missing.isEmpty || !outOfRange.isEmpty || !duplicated.isEmpty {
            // When the placement is itself consistent (ranks 0..<k, each once), -np k would run it.
            let placed = roles.keys.sorted()
            let consistent = duplicated.isEmpty && placed == Array(0..<placed.count)
            throw .rankMismatch(missing: missing, duplicated: duplicated, outOfRange: outOfRange,
                                worldSize: worldSize, fits: consistent ? placed.count : nil, source: source)
        }

        // Rank 0 owns the requests: it is the router.
        guard router == 0 else { throw .routerNotRankZero(router, source: source) }
        guard routers[0] != nil else { throw .routersWithoutRankZero(routers.keys.sorted(), source: source) }

        // Each router serves attention ranks, and each attention rank has exactly one router.
        var servedBy: [Int: [Int]] = [:]
        for r in routers.keys.sorted() {
            guard !routers[r]!.isEmpty else { throw .routerServesNothing(router: r, source: source) }
            for a in routers[r]! {
                guard roles[a] == [.attention] else {
                    throw .routerServesNonAttention(router: r, rank: a, role: roles[a]?.first, source: source)
                }
                guard servedBy[a]?.last != r else { throw .attentionServedTwice(rank: a, routers: [r, r], source: source) }
                servedBy[a, default: []].append(r)
            }
        }
        for a in servedBy.keys.sorted() where servedBy[a]!.count > 1 {
            throw .attentionServedTwice(rank: a, routers: servedBy[a]!, source: source)
        }
        let unserved = attentionRanks.filter { servedBy[$0] == nil }.sorted()
        guard unserved.isEmpty else { throw .attentionUnserved(unserved, routers: routers.keys.sorted(), source: source) }

        // Every routed expert on at least one expert rank, in the default placement and in each layer's.
        let expertRanks = expertsByRank.keys.sorted()
        let largest = (expertsByRank.values.joined() + layers.values.flatMap { $0.values.joined() }).max() ?? -1
        let count = routedExperts ?? (largest + 1)
        guard count > 0 else { throw .noRoutedExperts(source: source) }
        let defaultReplicas = try Self.replicas(expertsByRank, routedExperts: count, layer: nil, source: source)
        var layerReplicas: [Int: [[Int]]] = [:]
        for layer in layers.keys.sorted() {
            if let moeLayers, !moeLayers.contains(layer) {
                throw .layerNotMoE(layer: layer, moeLayers: moeLayers, source: source)
            }
            for rank in layers[layer]!.keys.sorted() where expertsByRank[rank] == nil {
                throw .layerRankNotExpert(layer: layer, rank: rank, role: roles[rank]?.first, expertRanks: expertRanks, source: source)
            }
            layerReplicas[layer] = try Self.replicas(layers[layer]!, routedExperts: count, layer: layer, source: source)
        }

        self.worldSize = worldSize
        self.router = router
        self.routers = routers.mapValues { $0.sorted() }
        self.attentionRanks = attentionRanks.sorted()
        self.expertRanks = expertRanks
        self.expertsByRank = expertsByRank.mapValues { $0.sorted() }
        self.layers = layers.mapValues { $0.mapValues { $0.sorted() } }
        self.routedExperts = count
        self.moeLayers = moeLayers?.sorted()
        self.defaultReplicas = defaultReplicas
        self.layerReplicas = layerReplicas
    }

    /// Expert id → the ranks of `placement` holding it, ascending; every expert held, no rank empty,
    /// no id out of range or listed twice for one rank. `layer` nil is the default placement.
    private static func replicas(_ placement: [Int: [Int]], routedExperts count: Int, layer: Int?,
                                 source: String) throws(LayoutError) -> [[Int]] {
        var replicas = [[Int]](repeating: [], count: count)
        for rank in placement.keys.sorted() {
            let ids = placement[rank]!
            guard !ids.isEmpty else { throw .expertRankEmpty(rank: rank, source: source, layer: layer) }
            for expert in ids.sorted() {
                guard expert >= 0 && expert < count else {
                    throw .expertOutOfRange(expert: expert, rank: rank, routedExperts: count, source: source, layer: layer)
                }
                guard replicas[expert].last != rank else {
                    throw .expertListedTwice(expert: expert, rank: rank, source: source, layer: layer)
                }
                replicas[expert].append(rank)
            }
        }
        let unheld = replicas.indices.filter { replicas[$0].isEmpty }
        guard unheld.isEmpty else { throw .expertsUnheld(unheld, routedExperts: count, source: source, layer: layer) }
        return replicas
    }

    public func role(of rank: Int) -> Role {
        precondition(rank >= 0 && rank < worldSize, "rank \(rank) is outside 0..<\(worldSize)")
        if routers[rank] != nil { return .router }
        return expertsByRank[rank] == nil ? .attention : .expert
    }

    /// The router ranks, ascending (rank 0 first).
    public var routerRanks: [Int] { routers.keys.sorted() }

    /// The router serving attention rank `rank`: it gates and dispatches that rank's tokens.
    public func router(serving rank: Int) -> Int {
        routers.first { $0.value.contains(rank) }!.key
    }

    /// Whether an expert is held by more than one rank, or a layer places experts its own way:
    /// what a layout written before replicas and per-layer placements could not say.
    public var isReplicatedOrPerLayer: Bool {
        !layers.isEmpty || defaultReplicas.contains { $0.count > 1 }
    }

    /// The expert rank holding routed expert `expert` in the default placement (every MoE layer
    /// of a layout without per-layer placements); the lowest such rank when it has replicas.
    /// `replicas(of:layer:)` answers for a given layer.
    public func expertRank(holding expert: Int) -> Int {
        precondition(expert >= 0 && expert < routedExperts, "expert \(expert) is outside 0..<\(routedExperts)")
        return defaultReplicas[expert][0]
    }

    /// The expert ranks holding routed expert `expert` in MoE layer `layer` (its replicas), ascending.
    public func replicas(of expert: Int, layer: Int) -> [Int] {
        precondition(expert >= 0 && expert < routedExperts, "expert \(expert) is outside 0..<\(routedExperts)")
        return (layerReplicas[layer] ?? defaultReplicas)[expert]
    }

    /// Per expert id, the expert ranks holding it in MoE layer `layer`, ascending.
    public func replicas(layer: Int) -> [[Int]] {
        layerReplicas[layer] ?? defaultReplicas
    }

    /// Expert rank → the routed expert ids it holds in MoE layer `layer`, ascending.
    public func placement(layer: Int) -> [Int: [Int]] {
        layers[layer] ?? expertsByRank
    }

    /// The routed expert ids `rank` holds in MoE layer `layer`, ascending; [] for a router or attention rank.
    public func experts(heldBy rank: Int, layer: Int) -> [Int] {
        placement(layer: layer)[rank] ?? []
    }

    /// The routed expert ids `rank` holds in at least one MoE layer, ascending; [] for a router
    /// or attention rank. For a layout that places every layer alike, the ids it holds in each.
    /// When the model's MoE layers are unknown, the default placement counts as one of them.
    public func experts(heldBy rank: Int) -> [Int] {
        guard !layers.isEmpty else { return expertsByRank[rank] ?? [] }
        let usesDefault = moeLayers.map { $0.contains { layers[$0] == nil } } ?? true
        var held = Set(usesDefault ? expertsByRank[rank] ?? [] : [])
        for placement in layers.values { held.formUnion(placement[rank] ?? []) }
        return held.sorted()
    }
}

// MARK: - Default layout

extension ClusterLayout {
    /// The default attention rank count for `-np worldSize`: one, plus one per four ranks beyond three.
    public static func defaultAttentionRanks(worldSize: Int) -> Int {
        1 + max(0, worldSize - 3) / 4
    }

    /// The documented default for `-np N`: rank 0 router; then `attention` attention ranks
    /// (default `1 + (N - 3) / 4`, at least 1); the remaining ranks hold experts, split
    /// contiguously in rank order (the first ranks get one more when uneven).
    public static func derived(worldSize: Int, routedExperts: Int, attentionRanks: Int? = nil) throws(LayoutError) -> ClusterLayout {
        let source = "default layout"
        guard worldSize >= 3 else { throw .tooFewRanks(worldSize: worldSize, source: source) }
        guard routedExperts > 0 else { throw .noRoutedExperts(source: source) }
        let attention = attentionRanks ?? defaultAttentionRanks(worldSize: worldSize)
        guard attention >= 1 && attention <= worldSize - 2 else {
            throw .attentionCount(attention, worldSize: worldSize)
        }
        let experts = worldSize - 1 - attention
        guard experts <= routedExperts else {
            throw .tooManyExpertRanks(experts, routedExperts: routedExperts, attention: attention, worldSize: worldSize)
        }
        var expertsByRank: [Int: [Int]] = [:]
        for (index, ids) in ExpertPlacement.contiguous(experts: routedExperts, ranks: experts).enumerated() {
            expertsByRank[1 + attention + index] = ids
        }
        return try ClusterLayout(worldSize: worldSize, router: 0, attentionRanks: Array(1...attention),
                                 expertsByRank: expertsByRank, routedExperts: routedExperts, source: source)
    }
}

extension ClusterLayout {
    /// The attention ranks the default layout gives a job with `expertRanks` expert ranks: the
    /// count `A` with `A == defaultAttentionRanks(worldSize: 1 + A + expertRanks)`.
    public static func defaultAttentionRanks(expertRanks: Int) -> Int {
        var attention = 1
        while defaultAttentionRanks(worldSize: 1 + attention + expertRanks) > attention { attention += 1 }
        return attention
    }

    /// A layout whose ranks are laid out as the default layout's — router 0, attention ranks
    /// `1...attention` (default: `defaultAttentionRanks(expertRanks:)`), then the expert ranks —
    /// with experts placed by a plan: `placement[i]` are the ids expert rank `i` (the i-th after
    /// the attention ranks) holds by default, `layers[l][i]` in MoE layer `l`.
    public static func planned(placement: [[Int]], layers: [Int: [[Int]]] = [:], attention: Int? = nil, routedExperts: Int,
                               moeLayers: [Int]? = nil) throws(LayoutError) -> ClusterLayout {
        let attention = attention ?? defaultAttentionRanks(expertRanks: placement.count)
        let first = 1 + attention
        func byRank(_ ids: [[Int]]) -> [Int: [Int]] {
            Dictionary(uniqueKeysWithValues: ids.enumerated().filter { !$0.element.isEmpty }.map { (first + $0.offset, $0.element) })
        }
        return try ClusterLayout(worldSize: first + placement.count, router: 0, attentionRanks: Array(1..<first),
                                 expertsByRank: byRank(placement), layers: layers.mapValues(byRank), routedExperts: routedExperts,
                                 moeLayers: moeLayers, source: "planned layout")
    }
}

// MARK: - Layout files

extension ClusterLayout {
    /// A JSON layout file (configs/layouts/*.json; the format is in configs/layouts/README.md),
    /// validated against the job's `-np` and the model's `n_routed_experts`.
    /// `moeLayers`, the model's MoE layers, are what per-layer placements may name (nil: not checked).
    public static func load(_ url: URL, worldSize: Int, routedExperts: Int, moeLayers: [Int]? = nil) throws(LayoutError) -> ClusterLayout {
        let source = url.path
        guard worldSize >= 3 else { throw .tooFewRanks(worldSize: worldSize, source: source) }
        let file = try LayoutFile(url)
        return try ClusterLayout(worldSize: worldSize, router: file.router, routers: file.routers, attentionRanks: file.attention,
                                 expertsByRank: file.experts, layers: file.layers, routedExperts: routedExperts,
                                 moeLayers: moeLayers, source: source)
    }

    /// The `-np` a layout file is written for: the number of ranks it places (they must be
    /// 0..<n, each once, for `load` to accept it with that world size).
    public static func worldSize(of url: URL) throws(LayoutError) -> Int {
        let file = try LayoutFile(url)
        return Set(Array(file.routers?.keys ?? [file.router: []].keys) + file.attention + file.experts.keys).count
    }
}

extension ClusterLayout {
    /// The layout as a layout file (configs/layouts/ format): ids as ranges, keys in numeric
    /// order, one line per rank; what `load` reads back as this layout.
    public func fileText(description: String? = nil) -> String {
        func quoted(_ text: String) -> String {
            String(decoding: (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
                .replacingOccurrences(of: "\\/", with: "/")
        }
        func placement(_ p: [Int: [Int]], indent: String) -> String {
            "{\n" + p.keys.sorted().map { "\(indent)  \"\($0)\": \"\(Self.ranges(p[$0]!))\"" }.joined(separator: ",\n") + "\n\(indent)}"
        }
        var lines = ["{"]
        if let description { lines.append("  \"description\": \(quoted(description)),") }
        if routers.count == 1 {
            lines.append("  \"router\": \(router),")
        } else {
            lines.append("  \"routers\": " + placement(routers, indent: "  ") + ",")
        }
        lines.append("  \"attention\": \"\(Self.ranges(attentionRanks))\",")
        lines.append("  \"experts\": " + placement(expertsByRank, indent: "  ") + (layers.isEmpty ? "" : ","))
        if !layers.isEmpty {
            lines.append("  \"layers\": {")
            lines.append(layers.keys.sorted().map { "    \"\($0)\": " + placement(layers[$0]!, indent: "    ") }.joined(separator: ",\n"))
            lines.append("  }")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The placement a layout file spells, parsed but not yet validated as a layout.
struct LayoutFile {
    /// Router rank → the attention ranks it serves; nil for the single-router form (`"router"`),
    /// whose router serves every attention rank.
    var routers: [Int: [Int]]?
    var router: Int
    var attention: [Int]
    var experts: [Int: [Int]]
    var layers: [Int: [Int: [Int]]]

    static let keys: Set<String> = ["router", "routers", "attention", "experts", "layers", "description"]

    init(_ url: URL) throws(LayoutError) {
        let source = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw .unreadable(reason: Self.reason(error), source: source)
        }
        let json: JSONValue
        do { json = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw .invalidJSON(reason: Self.reason(error), source: source)
        }
        guard case .object(let top) = json else {
            throw .wrongType(field: "the top level", expected: "a JSON object", found: json.kind, source: source)
        }
        let unknown = top.keys.filter { !Self.keys.contains($0) }.sorted()
        guard unknown.isEmpty else { throw .unknownKeys(unknown, source: source) }

        var router = 0
        var routers: [Int: [Int]]?
        switch (top["router"], top["routers"]) {
        case (nil, nil): throw .missingKey("router", source: source)
        case (.some, .some): throw .routerAndRouters(source: source)
        case (let routerValue?, nil):
            guard case .int(let rank) = routerValue else {
                throw .wrongType(field: "router", expected: "a rank number", found: routerValue.kind, source: source)
            }
            router = rank
        case (nil, let routersValue?):
            let map = try Self.placement(routersValue, field: "routers", source: source, what: "router rank → the attention ranks it serves")
            guard !map.isEmpty else { throw .routerServesNothing(router: nil, source: source) }
            routers = map
        }
        let attention: [Int]
        if let attentionValue = top["attention"] {
            attention = try Self.ids(attentionValue, field: "attention", source: source)
        } else if let routers {
            // With "routers", the attention ranks are the ones the routers serve.
            attention = Array(Set(routers.values.joined())).sorted()
        } else {
            throw .missingKey("attention", source: source)
        }
        guard let expertsValue = top["experts"] else { throw .missingKey("experts", source: source) }
        let experts = try Self.placement(expertsValue, field: "experts", source: source)
        var layers: [Int: [Int: [Int]]] = [:]
        if let layersValue = top["layers"] {
            guard case .object(let layerObject) = layersValue else {
                throw .wrongType(field: "layers", expected: "an object of MoE layer → placement", found: layersValue.kind, source: source)
            }
            var keyOfLayer: [Int: String] = [:]
            for (key, value) in layerObject.sorted(by: { $0.key < $1.key }) {
                guard let layer = Int(key.trimmingCharacters(in: .whitespaces)), layer >= 0 else {
                    throw .invalidEntry(field: "layers", entry: "\"\(key)\"", reason: "keys are MoE layer numbers like \"3\"", source: source)
                }
                if let earlier = keyOfLayer[layer] {
                    throw .invalidEntry(field: "layers", entry: "\"\(key)\"", reason: "layer \(layer) is already listed as \"\(earlier)\"", source: source)
                }
                layers[layer] = try Self.placement(value, field: "layers.\"\(key)\"", source: source)
                keyOfLayer[layer] = key
            }
        }
        self.routers = routers
        self.router = router
        self.attention = attention
        self.experts = experts
        self.layers = layers
    }

    /// An object of expert rank (a string key) → expert ids, at `field`.
    static func placement(_ value: JSONValue, field: String, source: String,
                          what: String = "rank → expert ids") throws(LayoutError) -> [Int: [Int]] {
        guard case .object(let object) = value else {
            throw .wrongType(field: field, expected: "an object of \(what)", found: value.kind, source: source)
        }
        var placement: [Int: [Int]] = [:]
        var keyOfRank: [Int: String] = [:]
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            guard let rank = Int(key.trimmingCharacters(in: .whitespaces)), rank >= 0 else {
                throw .invalidEntry(field: field, entry: "\"\(key)\"", reason: "keys are rank numbers like \"2\"", source: source)
            }
            let ids = try Self.ids(value, field: "\(field).\"\(key)\"", source: source)
            if let earlier = keyOfRank[rank] {
                throw .invalidEntry(field: field, entry: "\"\(key)\"", reason: "rank \(rank) is already listed as \"\(earlier)\"", source: source)
            }
            placement[rank] = ids
            keyOfRank[rank] = key
        }
        return placement
    }

    /// A list of non-negative ids: a number, a string of ids and inclusive ranges ("0-7,12"),
    /// or an array of numbers and such strings.
    static func ids(_ value: JSONValue, field: String, source: String) throws(LayoutError) -> [Int] {
        switch value {
        case .int(let id):
            guard id >= 0 else {
                throw .invalidEntry(field: field, entry: "\(id)", reason: "ids are not negative", source: source)
            }
            return [id]
        case .string(let text):
            var ids: [Int] = []
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                let item = part.trimmingCharacters(in: .whitespaces)
                let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
                    .map { Int($0.trimmingCharacters(in: .whitespaces)) }
                switch bounds.count {
                case 1 where bounds[0] != nil:
                    ids.append(bounds[0]!)
                case 2 where bounds[0] != nil && bounds[1] != nil:
                    guard bounds[0]! <= bounds[1]! else {
                        throw .invalidEntry(field: field, entry: "\"\(item)\"", reason: "a range a-b needs a ≤ b", source: source)
                    }
                    ids += Array(bounds[0]!...bounds[1]!)
                default:
                    throw .invalidEntry(field: field, entry: "\"\(item)\"",
                                        reason: "expected an id like 3 or an inclusive range like \"0-7\"", source: source)
                }
            }
            return ids
        case .array(let items):
            var ids: [Int] = []
            for item in items {
                if case .array = item {
                    throw .invalidEntry(field: field, entry: "a nested array", reason: "expected ids and \"a-b\" ranges", source: source)
                }
                ids += try Self.ids(item, field: field, source: source)
            }
            return ids
        default:
            throw .wrongType(field: field, expected: "ids and \"a-b\" ranges (a list, a string or a number)",
                             found: value.kind, source: source)
        }
    }

    /// An error's message on one line.
    private static func reason(_ error: any Error) -> String {
        let text: String
        if let decoding = error as? DecodingError {
            switch decoding {
            case .dataCorrupted(let context): text = (context.underlyingError as NSError?)?.localizedDescription ?? context.debugDescription
            default: text = "\(decoding)"
            }
        } else {
            text = (error as NSError).localizedDescription
        }
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}

/// A JSON value, decoded without losing whether a number was an integer.
enum JSONValue: Decodable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Int.self) { self = .int(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    var kind: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .int(let value): "\(value)"
        case .double(let value): "\(value)"
        case .string(let value): "\"\(value)\""
        case .array: "a list"
        case .object: "an object"
        }
    }
}

// MARK: - Start-up table

/// What one rank reported at start-up, as the start-up table shows it.
public struct RankFootprint: Sendable, Equatable {
    public var host: String
    /// Weight bytes the rank holds.
    public var residentBytes: Int
    /// The rank's model directory (its node's shard, or the whole model) and the bytes of the
    /// safetensors files there; ranks of a node sharing a directory count it once.
    public var modelDirectory: String
    public var diskBytes: Int

    public init(host: String, residentBytes: Int, modelDirectory: String, diskBytes: Int) {
        self.host = host
        self.residentBytes = residentBytes
        self.modelDirectory = modelDirectory
        self.diskBytes = diskBytes
    }
}

extension ClusterLayout {
    /// The start-up table rank 0 prints to standard error: one row per rank,
    /// `rank  host  role  experts  weights`, experts compacted to ranges (`0-7,12`) and
    /// resident weight bytes human-readable (`12.4 MiB`), unknown ones `-`; then one row per
    /// node, `host  ranks  weights  on disk`: the resident weights of its ranks, and the
    /// safetensors bytes of its model directories.
    public func table(_ ranks: [Int: RankFootprint]) -> String {
        var rows = [["rank", "host", "role", "experts", "weights"]]
        for rank in 0..<worldSize {
            let held = experts(heldBy: rank)
            rows.append([
                "\(rank)",
                ranks[rank]?.host ?? "-",
                role(of: rank).rawValue,
                held.isEmpty ? "-" : Self.ranges(held),
                ranks[rank].map { Self.bytes($0.residentBytes) } ?? "-",
            ])
        }
        var hosts: [String] = []
        for rank in ranks.keys.sorted() where !hosts.contains(ranks[rank]!.host) { hosts.append(ranks[rank]!.host) }
        var nodes = [["host", "ranks", "weights", "on disk"]]
        for host in hosts {
            let here = ranks.filter { $0.value.host == host }
            var directories: [String: Int] = [:]
            for footprint in here.values { directories[footprint.modelDirectory] = footprint.diskBytes }
            nodes.append([host, Self.ranges(Array(here.keys)), Self.bytes(here.values.reduce(0) { $0 + $1.residentBytes }),
                          Self.bytes(directories.values.reduce(0, +))])
        }
        return Self.columns(rows, rightAligned: [true, false, false, false, true])
            + (routerTable.map { "\n\n" + $0 } ?? "")
            + (placementTable.map { "\n\n" + $0 } ?? "")
            + (hosts.isEmpty ? "" : "\n\n" + Self.columns(nodes, rightAligned: [false, false, true, true]))
    }

    /// For a layout with several routers, each router and the attention ranks it serves; nil otherwise.
    var routerTable: String? {
        guard routers.count > 1 else { return nil }
        let rows = [["router", "serves attention ranks"]]
            + routerRanks.map { ["\($0)" + ($0 == router ? " (plans)" : ""), Self.ranges(routers[$0]!)] }
        return Self.columns(rows, rightAligned: [false, false])
    }

    /// For a layout with replicas or per-layer placements, the experts each expert rank holds
    /// per MoE layer, layers placed alike on one row (`1-3,5`); nil otherwise. When the model's
    /// MoE layers are unknown, the default placement's row is `other`.
    var placementTable: String? {
        guard isReplicatedOrPerLayer else { return nil }
        var groups: [(layers: [Int], placement: [Int: [Int]])] = []
        if let moeLayers {
            for l in moeLayers {
                let p = placement(layer: l)
                if let i = groups.firstIndex(where: { $0.placement == p }) { groups[i].layers.append(l) } else { groups.append(([l], p)) }
            }
        } else {
            groups = [([], expertsByRank)] + layers.sorted { $0.key < $1.key }.map { ([$0.key], $0.value) }
        }
        var rows = [["MoE layers"] + expertRanks.map { "rank \($0)" }]
        for group in groups {
            rows.append([group.layers.isEmpty ? "other" : Self.ranges(group.layers)]
                        + expertRanks.map { group.placement[$0].map { Self.ranges($0) } ?? "-" })
        }
        return Self.columns(rows, rightAligned: Array(repeating: false, count: expertRanks.count + 1))
    }

    /// Rows padded into columns two spaces apart; numbers right-aligned, words left-aligned.
    public static func columns(_ rows: [[String]], rightAligned: [Bool]) -> String {
        let widths = rightAligned.indices.map { column in rows.map { $0[column].count }.max()! }
        return rows.map { row in
            rightAligned.indices.map { column in
                let pad = String(repeating: " ", count: widths[column] - row[column].count)
                return rightAligned[column] ? pad + row[column] : row[column] + pad
            }
            .joined(separator: "  ")
            .trimmingTrailingSpaces
        }
        .joined(separator: "\n")
    }

    /// Ids compacted to inclusive ranges: [0, 1, 2, 3, 12, 14, 15] → `0-3,12,14-15`.
    public static func ranges(_ ids: [Int]) -> String {
        var parts: [String] = []
        var sorted = Array(Set(ids)).sorted()[...]
        while let first = sorted.first {
            var last = first
            sorted = sorted.dropFirst()
            while sorted.first == last + 1 { last = sorted.removeFirst() }
            parts.append(last == first ? "\(first)" : "\(first)-\(last)")
        }
        return parts.joined(separator: ",")
    }

    /// Bytes in binary units with one decimal: `512 B`, `12.4 MiB`.
    public static func bytes(_ count: Int) -> String {
        guard count >= 1024 else { return "\(count) B" }
        var value = Double(count) / 1024
        var unit = 0
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
        // 1023.96 KiB prints as 1.0 MiB, not 1024.0 KiB.
        while value >= 1023.95 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.1f", value) + " " + units[unit]
    }
}

extension LayoutError {
    /// "MoE layer 3: " for an error in a layer's own placement, "" in the default one.
    fileprivate static func inLayer(_ layer: Int?) -> String {
        layer.map { "MoE layer \($0): " } ?? ""
    }
}

extension String {
    fileprivate var trimmingTrailingSpaces: String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}

// MARK: - Errors

/// Why a layout cannot run. Every message is one line that names the layout file (or the
/// default layout and its `-np`) and says what to change. Raised before any weight loads.
public enum LayoutError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Fewer than 3 ranks: a router, an attention rank and an expert rank are all needed.
    case tooFewRanks(worldSize: Int, source: String)
    /// The layout file could not be read.
    case unreadable(reason: String, source: String)
    /// The layout file is not JSON.
    case invalidJSON(reason: String, source: String)
    /// A value has the wrong JSON type.
    case wrongType(field: String, expected: String, found: String, source: String)
    /// "router", "attention" or "experts" is absent.
    case missingKey(String, source: String)
    /// Keys the format does not have (likely typos).
    case unknownKeys([String], source: String)
    /// An id, range or rank key that cannot be read.
    case invalidEntry(field: String, entry: String, reason: String, source: String)
    /// The ranks placed are not exactly 0..<worldSize, each once. `fits` is the -np the
    /// placement would run with as it stands, if there is one.
    case rankMismatch(missing: [Int], duplicated: [Int: [ClusterLayout.Role]], outOfRange: [Int],
                      worldSize: Int, fits: Int?, source: String)
    /// The router is not rank 0 (rank 0 takes the requests and prints the results).
    case routerNotRankZero(Int, source: String)
    /// `"routers"` does not name rank 0 (rank 0 takes the requests and makes the step plans).
    case routersWithoutRankZero([Int], source: String)
    /// Both `"router"` and `"routers"` are given.
    case routerAndRouters(source: String)
    /// A router serving no attention rank (nil: `"routers"` is empty).
    case routerServesNothing(router: Int?, source: String)
    /// A router lists a rank that is not an attention rank (`role` its role, nil when placed nowhere).
    case routerServesNonAttention(router: Int, rank: Int, role: ClusterLayout.Role?, source: String)
    /// An attention rank listed by more than one router (or twice by one).
    case attentionServedTwice(rank: Int, routers: [Int], source: String)
    /// Attention ranks no router serves.
    case attentionUnserved([Int], routers: [Int], source: String)
    case noAttentionRank(source: String)
    case noExpertRank(source: String)
    /// The model has no routed experts to place.
    case noRoutedExperts(source: String)
    /// An expert rank with an empty expert list (in the default placement, or in `layer`'s).
    case expertRankEmpty(rank: Int, source: String, layer: Int? = nil)
    /// An expert id not below the model's `n_routed_experts`.
    case expertOutOfRange(expert: Int, rank: Int, routedExperts: Int, source: String, layer: Int? = nil)
    /// An expert listed twice for one rank (a replica belongs on another rank).
    case expertListedTwice(expert: Int, rank: Int, source: String, layer: Int? = nil)
    /// Experts no rank holds.
    case expertsUnheld([Int], routedExperts: Int, source: String, layer: Int? = nil)
    /// A per-layer placement for a layer that is not a MoE layer of the model.
    case layerNotMoE(layer: Int, moeLayers: [Int], source: String)
    /// A per-layer placement names a rank that is not an expert rank (`role` is its role, nil
    /// when the layout places it nowhere).
    case layerRankNotExpert(layer: Int, rank: Int, role: ClusterLayout.Role?, expertRanks: [Int], source: String)
    /// `--attention-ranks` leaves no router, attention or expert rank in the default layout.
    case attentionCount(Int, worldSize: Int)
    /// The default layout would have more expert ranks than there are routed experts.
    case tooManyExpertRanks(Int, routedExperts: Int, attention: Int, worldSize: Int)

    public var description: String {
        switch self {
        case .tooFewRanks(let n, let source):
            return "\(source): needs at least 3 ranks: a router, an attention rank and an expert rank; got -np \(n)"
        case .unreadable(let reason, let source):
            return "cannot read layout file \(source): \(reason)"
        case .invalidJSON(let reason, let source):
            return "layout file \(source) is not valid JSON: \(reason)"
        case .wrongType(let field, let expected, let found, let source):
            return "\(source): \(field) should be \(expected), found \(found)"
        case .missingKey(let key, let source):
            return "\(source): required key \"\(key)\" is missing; a layout has \"router\" (or \"routers\"), \"attention\" and \"experts\""
        case .unknownKeys(let keys, let source):
            let list = keys.map { "\"\($0)\"" }.joined(separator: ", ")
            return "\(source): unknown key\(keys.count == 1 ? "" : "s") \(list); a layout has only \"router\" or \"routers\", \"attention\", \"experts\", \"layers\" and \"description\""
        case .invalidEntry(let field, let entry, let reason, let source):
            return "\(source): \(field) entry \(entry) is invalid: \(reason)"
        case .rankMismatch(let missing, let duplicated, let outOfRange, let n, let fits, let source):
            var problems: [String] = []
            if !missing.isEmpty {
                problems.append(missing.count == 1 ? "rank \(missing[0]) is missing"
                                                   : "ranks \(ClusterLayout.ranges(missing)) are missing")
            }
            for rank in duplicated.keys.sorted() {
                let roles = duplicated[rank]!.map(\.rawValue).joined(separator: " and ")
                problems.append("rank \(rank) is placed more than once (\(roles))")
            }
            if !outOfRange.isEmpty {
                problems.append((outOfRange.count == 1 ? "rank \(outOfRange[0]) is" : "ranks \(ClusterLayout.ranges(outOfRange)) are")
                                + " out of range for -np \(n)")
            }
            let fix = fits.map { " or run with -np \($0)" } ?? ""
            return "\(source) does not fit -np \(n): " + problems.joined(separator: "; ")
                + "; place each rank \(ClusterLayout.ranges(Array(0..<n))) exactly once\(fix)"
        case .routerNotRankZero(let rank, let source):
            return "\(source): the router is rank \(rank), but it must be rank 0 (rank 0 takes the requests); set \"router\": 0 and move rank 0's role to rank \(rank)"
        case .routersWithoutRankZero(let routers, let source):
            return "\(source): \"routers\" names rank\(routers.count == 1 ? "" : "s") \(ClusterLayout.ranges(routers)) but not rank 0; rank 0 must be a router (it takes the requests and makes the step plans)"
        case .routerAndRouters(let source):
            return "\(source): both \"router\" and \"routers\" are given; use \"router\": 0 for one router, or only \"routers\" (router rank → the attention ranks it serves)"
        case .routerServesNothing(nil, let source):
            return "\(source): \"routers\" is empty; name rank 0 and the attention ranks it serves, e.g. {\"0\": [1]}"
        case .routerServesNothing(let router?, let source):
            return "\(source): router \(router) serves no attention rank; give it attention ranks in \"routers\", or make rank \(router) an attention or expert rank"
        case .routerServesNonAttention(let router, let rank, let role, let source):
            let what = role.map { "the \($0.rawValue) rank" } ?? "not a rank of this layout"
            return "\(source): router \(router) serves rank \(rank), but it is \(what); a router serves attention ranks (listed in \"attention\", or only in \"routers\")"
        case .attentionServedTwice(let rank, let routers, let source):
            let who = Set(routers).count == 1 ? "router \(routers[0]) lists it twice" : "routers \(routers.map(String.init).joined(separator: " and ")) both list it"
            return "\(source): attention rank \(rank) is served by more than one router (\(who)); list each attention rank under exactly one router in \"routers\""
        case .attentionUnserved(let ranks, let routers, let source):
            let which = ranks.count == 1 ? "attention rank \(ranks[0]) is" : "attention ranks \(ClusterLayout.ranges(ranks)) are"
            return "\(source): \(which) served by no router; list \(ranks.count == 1 ? "it" : "each") under one of the routers \(ClusterLayout.ranges(routers)) in \"routers\""
        case .noAttentionRank(let source):
            return "\(source): no attention rank; list at least one rank in \"attention\""
        case .noExpertRank(let source):
            return "\(source): no expert rank; give \"experts\" at least one rank and its expert ids"
        case .noRoutedExperts(let source):
            return "\(source): the model has no routed experts (n_routed_experts = 0); a dense model runs without mpirun"
        case .expertRankEmpty(let rank, let source, nil):
            return "\(source): expert rank \(rank) holds no experts; give it expert ids, or remove it and lower -np"
        case .expertRankEmpty(let rank, let source, let layer?):
            return "\(source): MoE layer \(layer): expert rank \(rank) is given no experts; give it expert ids in layers.\"\(layer)\", or leave it out of that layer"
        case .expertOutOfRange(let expert, let rank, let count, let source, let layer):
            return "\(source): \(Self.inLayer(layer))rank \(rank) holds expert \(expert), but the model's experts are \(ClusterLayout.ranges(Array(0..<count))) (n_routed_experts = \(count))"
        case .expertListedTwice(let expert, let rank, let source, let layer):
            return "\(source): \(Self.inLayer(layer))expert \(expert) is listed twice for rank \(rank); list it once (a replica goes on another rank)"
        case .expertsUnheld(let experts, let count, let source, let layer):
            let which = experts.count == 1 ? "expert \(experts[0]) is" : "experts \(ClusterLayout.ranges(experts)) are"
            let place = layer.map { " in layers.\"\($0)\"" } ?? ""
            return "\(source): \(Self.inLayer(layer))\(which) held by no rank; every expert \(ClusterLayout.ranges(Array(0..<count))) (n_routed_experts = \(count)) must be on at least one expert rank\(place)"
        case .layerNotMoE(let layer, let moeLayers, let source):
            let which = moeLayers.isEmpty ? "the model has none" : "the model's are \(ClusterLayout.ranges(moeLayers))"
            return "\(source): layers.\"\(layer)\" places experts for layer \(layer), which is not a MoE layer; \(which)"
        case .layerRankNotExpert(let layer, let rank, let role, let expertRanks, let source):
            let what = role.map { "the \($0.rawValue) rank" } ?? "not a rank of this layout"
            return "\(source): MoE layer \(layer): rank \(rank) is given experts, but it is \(what); a layer places experts on the expert ranks (\(ClusterLayout.ranges(expertRanks))) named in \"experts\""
        case .attentionCount(let attention, let n):
            let allowed = n - 2 == 1 ? "1" : "1 to \(n - 2)"
            return "default layout: --attention-ranks \(attention) does not fit -np \(n); beside the router and at least one expert rank that leaves \(allowed) attention rank\(n - 2 == 1 ? "" : "s")"
        case .tooManyExpertRanks(let experts, let count, let attention, let n):
            return "default layout: -np \(n) with \(attention) attention rank\(attention == 1 ? "" : "s") leaves \(experts) expert ranks for \(count) routed experts (n_routed_experts); use -np \(1 + attention + count) or fewer, --attention-ranks \(n - 1 - count) or more, or a --layout file"
        }
    }
}
