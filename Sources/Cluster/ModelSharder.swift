import Checkpoint
import Foundation

/// Which node serves which ranks, and the tensors those ranks load: what `conclave shard` writes.
public struct ShardPlan: Sendable {
    /// One node of the hostfile and its part of the model.
    public struct Node: Sendable, Equatable {
        /// The node's name in the hostfile: its directory's name.
        public let host: String
        public let ranks: [ShardManifest.Rank]
        /// The tensors its ranks load, rank by rank (so a rank's tensors sit together in the files).
        public let tensors: [String]
    }

    public let layout: ClusterLayout
    public let nodes: [Node]

    /// `tensorNames` are the source model's. Throws when the hostfile's slots are not the
    /// layout's ranks, or a rank needs a tensor the model does not have.
    public init(hostfile: Hostfile, layout: ClusterLayout, config: ModelConfig, tensorNames: [String]) throws(ShardError) {
        guard hostfile.totalSlots == layout.worldSize else {
            throw .slotsMismatch(slots: hostfile.totalSlots, hostfile: hostfile.source, ranks: layout.worldSize, layout: "the layout")
        }
        var nodes: [Node] = []
        for node in hostfile.nodes {
            var ranks: [ShardManifest.Rank] = []
            var tensors: [String] = []
            var seen: Set<String> = []
            for rank in node.ranks {
                let entry = ShardManifest.Rank(rank: rank, layout: layout, config: config)
                let needed = RankTensors(role: entry.role, experts: entry.experts(layer:), config: config, available: tensorNames)
                guard needed.missing.isEmpty else { throw .missingTensors(needed.missing, rank: entry) }
                ranks.append(entry)
                tensors += needed.names.filter { seen.insert($0).inserted }
            }
            nodes.append(Node(host: node.name, ranks: ranks, tensors: tensors))
        }
        self.layout = layout
        self.nodes = nodes
    }

    /// The layout for `hostfile`'s slots: from `layoutFile`, or the default one (with
    /// `attentionRanks` attention ranks, or the default count). `moeLayers` are the model's.
    public static func layout(for hostfile: Hostfile, layoutFile: URL?, attentionRanks: Int?,
                              routedExperts: Int, moeLayers: [Int]? = nil) throws -> ClusterLayout {
        guard let layoutFile else {
            return try ClusterLayout.derived(worldSize: hostfile.totalSlots, routedExperts: routedExperts, attentionRanks: attentionRanks)
        }
        let placed = try ClusterLayout.worldSize(of: layoutFile)
        guard placed == hostfile.totalSlots else {
            throw ShardError.slotsMismatch(slots: hostfile.totalSlots, hostfile: hostfile.source, ranks: placed, layout: "layout \(layoutFile.path)")
        }
        return try ClusterLayout.load(layoutFile, worldSize: placed, routedExperts: routedExperts, moeLayers: moeLayers)
    }
}

/// What `ModelSharder` wrote for one node.
public struct NodeShardSummary: Sendable {
    public let node: ShardPlan.Node
    /// Bytes of its safetensors files.
    public let weightBytes: Int
}

/// Writes one model directory per node of a `ShardPlan`: `OUT/<host>/` with the source's config
/// and tokenizer files, safetensors files (and index) holding only the node's tensors in their
/// stored dtype, and `conclave-shard.json`.
public enum ModelSharder {
    /// Files copied as they are, when the source has them.
    public static let metadataFiles = [Checkpoint.configFile, "generation_config.json", "tokenizer.json", "tokenizer_config.json"]

    public static func write(_ plan: ShardPlan, from checkpoint: Checkpoint, to output: URL,
                             maxFileBytes: Int) throws -> [NodeShardSummary] {
        let source = checkpoint.directory
        let fm = FileManager.default
        guard !fm.fileExists(atPath: source.appendingPathComponent(ShardManifest.fileName).path) else {
            throw ShardError.sourceIsShard(model: source.path)
        }
        let fingerprint = modelFingerprint(source)
        var summaries: [NodeShardSummary] = []
        for node in plan.nodes {
            let directory = output.appendingPathComponent(node.host, isDirectory: true)
            // The writer clears weight files it does not write: never let that be the source's.
            guard directory.resolvingSymlinksInPath().standardizedFileURL.path != source.resolvingSymlinksInPath().standardizedFileURL.path else {
                throw ShardError.outputIsSource(directory.path)
            }
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            // Without a manifest the directory is not a finished shard; it comes last.
            try? fm.removeItem(at: directory.appendingPathComponent(ShardManifest.fileName))

            var files: [String] = []
            for name in metadataFiles where fm.fileExists(atPath: source.appendingPathComponent(name).path) {
                let target = directory.appendingPathComponent(name)
                try? fm.removeItem(at: target)
                try fm.copyItem(at: source.appendingPathComponent(name), to: target)
                files.append(name)
            }
            let writer = SafetensorsWriter()
            for name in node.tensors {
                let (info, bytes) = try checkpoint.storedBytes(of: name)
                try writer.add(name, dtype: info.dtype, shape: info.shape) { $0.copyMemory(from: bytes) }
            }
            files += try writer.writeCheckpoint(to: directory, maxShardBytes: maxFileBytes)

            var entries: [ShardManifest.File] = []
            var weightBytes = 0
            for name in files {
                let url = directory.appendingPathComponent(name)
                // Reopening a written file lists what it really holds (and validates its header).
                let tensors = name.hasSuffix(".safetensors") ? try SafetensorsFile(url: url).tensorNames : nil
                let bytes = try fm.attributesOfItem(atPath: url.path)[.size] as? Int ?? 0
                if tensors != nil { weightBytes += bytes }
                entries.append(ShardManifest.File(name: name, bytes: bytes, sha256: try FileDigest.sha256(of: url), tensors: tensors))
            }
            try ShardManifest(sourceModel: source.path, sourceFingerprint: fingerprint, host: node.host,
                              worldSize: plan.layout.worldSize, ranks: node.ranks, files: entries).write(to: directory)
            summaries.append(NodeShardSummary(node: node, weightBytes: weightBytes))
        }
        return summaries
    }
}

extension NodeShardSummary {
    /// What `conclave shard` wrote, one row per node: `host  ranks  serves  tensors  weights`.
    public static func table(_ summaries: [NodeShardSummary]) -> String {
        var rows = [["host", "ranks", "serves", "tensors", "weights"]]
        for summary in summaries {
            let roles = summary.node.ranks.map { $0.role.rawValue + ($0.experts.isEmpty ? "" : " " + ClusterLayout.ranges($0.experts)) }
            rows.append([summary.node.host, ClusterLayout.ranges(summary.node.ranks.map(\.rank)), roles.joined(separator: ", "),
                         "\(summary.node.tensors.count)", ClusterLayout.bytes(summary.weightBytes)])
        }
        return ClusterLayout.columns(rows, rightAligned: [false, false, false, true, true])
    }
}

/// Why `conclave shard` cannot cut a model. Each message names the file and what to change.
public enum ShardError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The hostfile's slots are not the layout's ranks.
    case slotsMismatch(slots: Int, hostfile: String, ranks: Int, layout: String)
    /// The source model lacks tensors a rank needs.
    case missingTensors([String], rank: ShardManifest.Rank)
    /// The source is itself one node's shard.
    case sourceIsShard(model: String)
    /// A node's output directory is the source model's.
    case outputIsSource(String)

    public var description: String {
        switch self {
        case .slotsMismatch(let slots, let hostfile, let ranks, let layout):
            "hostfile \(hostfile) has \(slots) slots, but \(layout) places \(ranks) ranks; mpirun --map-by slot gives each slot one rank: make the slots add up to \(ranks), or use a layout for \(slots) ranks"
        case .missingTensors(let names, let rank):
            "the model lacks \(names.count) tensor\(names.count == 1 ? "" : "s") that \(rank.text) loads: \(names.prefix(3).joined(separator: ", "))\(names.count > 3 ? ", …" : "")"
        case .sourceIsShard(let model):
            "\(model) is one node's shard (it has \(ShardManifest.fileName)); cut the whole model instead"
        case .outputIsSource(let directory):
            "\(directory) is the model directory itself; choose an --out directory outside the model"
        }
    }
}
