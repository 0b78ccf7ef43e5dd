import Checkpoint

/// The checkpoint tensors one rank loads, by its role: what `conclave shard` copies to the rank's
/// node, and what start-up checks a node's shard for. It follows the ranks' loaders:
///
/// - router: every MoE layer's gate (`mlp.gate.*`: the router weights, `e_score_correction_bias`);
/// - attention: everything else that a decoder uses — embeddings, attention, norms, dense MLPs,
///   shared experts, LM head — as `DeepseekModel(checkpoint:localRouted: false)` loads it;
/// - expert: its routed experts (`mlp.experts.<id>.*`) of each MoE layer: the same ids in
///   every layer, or each layer's own (a layout with per-layer placements).
///
/// A weight's FP8 scales (`<name>_scale_inv`) go with it, and layers at or past
/// `num_hidden_layers` (DeepSeek-V3's multi-token-prediction layer) belong to no rank: the
/// loaders skip them.
public struct RankTensors: Sendable, Equatable {
    /// The tensors of `available` the rank loads, sorted.
    public let names: [String]
    /// Tensors the rank cannot start without that `available` lacks: gate weights (and
    /// correction biases under `noaux_tc`) for the router, expert projections for an expert rank.
    public let missing: [String]

    /// `experts` are the routed expert ids an expert rank holds in every MoE layer (ignored for
    /// other roles); `available` is every tensor name on offer (a checkpoint's, or a shard manifest's).
    public init(role: ClusterLayout.Role, experts: [Int], config: ModelConfig, available: some Collection<String>) {
        self.init(role: role, experts: { _ in experts }, config: config, available: available)
    }

    /// `experts(layer)` are the routed expert ids an expert rank holds in MoE layer `layer`.
    public init(role: ClusterLayout.Role, experts: (Int) -> [Int], config: ModelConfig, available: some Collection<String>) {
        let moeLayers = config.moeLayers
        let held = Dictionary(uniqueKeysWithValues: moeLayers.map { ($0, role == .expert ? Set(experts($0)) : []) })
        names = available.filter { name in
            switch Self.owner(of: name, config: config) {
            case .router: role == .router
            case .attention: role == .attention
            case .expert(let layer, let id): role == .expert && held[layer]?.contains(id) == true
            case .none: false
            }
        }.sorted()

        let required: [String] = switch role {
        case .router:
            moeLayers.flatMap { layer in
                ["model.layers.\(layer).mlp.gate.weight"]
                    + (config.topkMethod == .noauxTC ? ["model.layers.\(layer).mlp.gate.e_score_correction_bias"] : [])
            }
        case .expert:
            moeLayers.flatMap { layer in
                held[layer]!.sorted().flatMap { id in
                    ["gate_proj", "up_proj", "down_proj"].map { "model.layers.\(layer).mlp.experts.\(id).\($0).weight" }
                }
            }
        case .attention:
            []
        }
        let present = Set(names)
        missing = required.filter { !present.contains($0) }
    }

    /// Which role loads tensor `name`; nil for a layer no rank runs.
    enum Owner: Equatable {
        case router, attention
        case expert(layer: Int, id: Int)
    }

    static func owner(of name: String, config: ModelConfig) -> Owner? {
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return .attention }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return .attention }
        guard layer < config.numHiddenLayers else { return nil }
        guard config.isMoELayer(layer) else { return .attention }
        let inLayer = rest[rest.index(after: dot)...]
        if inLayer.hasPrefix("mlp.gate.") { return .router }
        let experts = "mlp.experts."
        if inLayer.hasPrefix(experts) {
            let id = inLayer.dropFirst(experts.count).prefix { $0 != "." }
            if let id = Int(id) { return .expert(layer: layer, id: id) }
        }
        return .attention
    }
}
