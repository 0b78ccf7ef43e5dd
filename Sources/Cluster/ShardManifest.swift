import Checkpoint
import Foundation

/// `conclave-shard.json`: what `conclave shard` put in one node's model directory — the model it
/// was cut from, the ranks it serves, and every file's size and SHA-256 with the tensors it holds —
/// so that a rank given the wrong node's directory, or a damaged one, is refused before it loads.
public struct ShardManifest: Codable, Sendable, Equatable {
    public static let fileName = "conclave-shard.json"
    public static let currentFormat = "conclave-shard/1"

    /// One rank the node serves, as the layout placed it.
    public struct Rank: Codable, Sendable, Equatable {
        public var rank: Int
        public var role: ClusterLayout.Role
        /// Routed expert ids (expert ranks only), ascending: those it holds in some MoE layer.
        public var experts: [Int]
        /// For a layout with per-layer placements, MoE layer (a string key, as JSON has them) →
        /// the ids the rank holds there; absent when every layer holds `experts`.
        public var layers: [String: [Int]]?

        public init(rank: Int, role: ClusterLayout.Role, experts: [Int], layers: [Int: [Int]]? = nil) {
            self.rank = rank
            self.role = role
            self.experts = experts
            self.layers = layers.map { Dictionary(uniqueKeysWithValues: $0.map { (String($0.key), $0.value) }) }
        }

        /// Rank `rank` as `layout` places it; `config` gives the MoE layers of per-layer placements.
        public init(rank: Int, layout: ClusterLayout, config: ModelConfig) {
            let role = layout.role(of: rank)
            let moeLayers = config.moeLayers
            let perLayer = role == .expert && !layout.layers.isEmpty
                ? Dictionary(uniqueKeysWithValues: moeLayers.map { ($0, layout.experts(heldBy: rank, layer: $0)) }) : nil
            self.init(rank: rank, role: role, experts: perLayer.map { Array(Set($0.values.joined())).sorted() } ?? layout.experts(heldBy: rank),
                      layers: perLayer)
        }

        /// The ids the rank holds in MoE layer `layer`.
        public func experts(layer: Int) -> [Int] {
            layers?[String(layer)] ?? experts
        }

        /// `rank 2 (expert 0-7)`; `rank 2 (expert 0-7, per layer 1: 0-3, 2: 4-7)` with per-layer placements.
        var text: String {
            let perLayer = layers.map { layers in
                ", per layer " + layers.keys.sorted { Int($0) ?? 0 < Int($1) ?? 0 }
                    .map { "\($0): \(ClusterLayout.ranges(layers[$0]!))" }.joined(separator: ", ")
            } ?? ""
            return "rank \(rank) (\(role.rawValue)\(experts.isEmpty ? "" : " " + ClusterLayout.ranges(experts))\(perLayer))"
        }
    }

    /// One file of the node's directory.
    public struct File: Codable, Sendable, Equatable {
        /// Name inside the directory.
        public var name: String
        public var bytes: Int
        /// Lowercase hex, as `sha256sum` prints it.
        public var sha256: String
        /// The tensors a safetensors file holds, sorted; absent for other files.
        public var tensors: [String]?

        public init(name: String, bytes: Int, sha256: String, tensors: [String]? = nil) {
            self.name = name
            self.bytes = bytes
            self.sha256 = sha256
            self.tensors = tensors
        }
    }

    /// `conclave-shard/1`.
    public var format: String
    /// The model directory the shard was cut from, as given to `conclave shard`.
    public var sourceModel: String
    /// The source model's fingerprint (config.json and weight index), which every rank of a job
    /// compares: a shard's own index differs from the full model's.
    public var sourceFingerprint: String
    /// The node's name in the hostfile.
    public var host: String
    /// The ranks of the whole job.
    public var worldSize: Int
    /// The ranks this node serves, ascending.
    public var ranks: [Rank]
    /// Every file of the directory but this manifest, by name.
    public var files: [File]

    public init(sourceModel: String, sourceFingerprint: String, host: String, worldSize: Int, ranks: [Rank], files: [File]) {
        format = Self.currentFormat
        self.sourceModel = sourceModel
        self.sourceFingerprint = sourceFingerprint
        self.host = host
        self.worldSize = worldSize
        self.ranks = ranks
        self.files = files
    }

    enum CodingKeys: String, CodingKey {
        case format, host, ranks, files
        case sourceModel = "source_model"
        case sourceFingerprint = "source_fingerprint"
        case worldSize = "world_size"
    }

    /// Every tensor the node holds.
    public var tensorNames: [String] { files.flatMap { $0.tensors ?? [] } }

    /// The manifest in `directory`, or nil when the directory is not a shard (a whole model).
    /// `host` (where the reading rank runs) labels errors.
    public static func read(in directory: URL, host: String) throws(ShardCheckError) -> ShardManifest? {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        func failure(_ problem: ShardCheckError.Problem) -> ShardCheckError {
            ShardCheckError(node: nil, host: host, file: url.path, problem: problem)
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw failure(.unreadable((error as NSError).localizedDescription))
        }
        let manifest: ShardManifest
        do { manifest = try JSONDecoder().decode(ShardManifest.self, from: data) } catch {
            throw failure(.invalid("\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")))
        }
        guard manifest.format == currentFormat else {
            throw failure(.invalid("format \"\(manifest.format)\", this conclave reads \"\(currentFormat)\""))
        }
        return manifest
    }

    /// Writes the manifest into `directory` (atomically: a shard without one is not finished).
    public func write(to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: directory.appendingPathComponent(Self.fileName), options: .atomic)
    }
}

extension ClusterLayout.Role: Codable {}
