import Checkpoint
import ControlPlane
import Engine
import Experts
import Foundation
import Model
import Transport

/// How to start a cluster run: the model, where the layout comes from, and how to hold the weights.
public struct ClusterOptions: Sendable {
    public var model: URL
    public var layoutFile: URL?
    public var attentionRanks: Int?
    /// For a node's shard (`conclave shard`): hash the files a rank reads against the manifest
    /// before loading (sizes are always checked).
    public var verifyChecksums: Bool
    /// Lock each rank's mapped weights in RAM (`mlock`) once loaded.
    public var lockWeights: Bool

    public init(model: URL, layoutFile: URL? = nil, attentionRanks: Int? = nil, verifyChecksums: Bool = true, lockWeights: Bool = false) {
        self.model = model
        self.layoutFile = layoutFile
        self.attentionRanks = attentionRanks
        self.verifyChecksums = verifyChecksums
        self.lockWeights = lockWeights
    }
}

/// Rank 0's handle on a running cluster: the executor to drive, and the way to end it.
public final class ClusterSession {
    public let router: RouterRank
    /// One row per rank: what it holds (for `--profile-out`).
    public let ranks: [Hello]
    /// The fingerprint of the model every rank loaded (`ModelFingerprint`).
    public let modelFingerprint: String

    init(router: RouterRank, ranks: [Hello], modelFingerprint: String) {
        self.router = router
        self.ranks = ranks
        self.modelFingerprint = modelFingerprint
    }

    /// Shuts every rank down (after the all-to-all baseline) and returns the profile.
    public func finish(reason: String = "done") throws -> AllToAllProfile {
        try router.shutdown(reason: reason)
        try MPIRuntime.finalize()
        return router.profile
    }

    public var ranksJSON: [[String: Any]] {
        ranks.map { ["rank": $0.rank, "host": $0.host, "role": $0.role.rawValue, "experts": $0.experts,
                     "resident_weight_bytes": $0.residentWeightBytes, "disk_bytes": $0.diskBytes] }
    }
}

/// Starts this process's part of a cluster run under mpirun.
///
/// Every rank reads config.json and the layout and validates them before loading any
/// weight; a mismatch is one line from rank 0 and every rank exits non-zero. Then each
/// rank checks its node's shard against its manifest (when the model directory is one),
/// maps only the tensors of its role (locking them in RAM with `lockWeights`) and reports a
/// `Hello` (or its error) to rank 0, which prints the start-up table — or every rank's
/// error — and tells all ranks to go on or stop.
public enum ClusterLauncher {
    /// On rank 0, the session to drive; on the other ranks, runs their role until the
    /// router shuts the cluster down, then returns nil.
    public static func start(_ options: ClusterOptions, world: Communicator) throws -> ClusterSession? {
        // Layouts keep the router at rank 0: it owns the requests and prints the results.
        let router = 0
        let host = MPIRuntime.processorName
        let verdict = Result { () throws -> (ModelConfig, ClusterLayout, ShardManifest?) in
            let config = try ModelConfig(contentsOf: options.model.appendingPathComponent(Checkpoint.configFile))
            let layout = if let file = options.layoutFile {
                try ClusterLayout.load(file, worldSize: world.size, routedExperts: config.nRoutedExperts,
                                       moeLayers: config.moeLayers)
            } else {
                try ClusterLayout.derived(worldSize: world.size, routedExperts: config.nRoutedExperts, attentionRanks: options.attentionRanks)
            }
            return (config, layout, try ShardManifest.read(in: options.model, host: host))
        }
        // Ranks usually agree (same files); when one cannot read its copy, or its copy of the
        // model differs (nodes with their own disks), all must still stop together. A node's
        // shard has an index of its own: it answers for the model it was cut from.
        let fingerprint = verdict.map { _, _, manifest in manifest?.sourceFingerprint ?? modelFingerprint(options.model) }
        let mine = switch fingerprint {
        case .success(let fingerprint): "model " + fingerprint
        case .failure(let error): "error \(error)"
        }
        let verdicts = try world.gather(bytes: Array(mine.utf8), root: router).map { String(decoding: $0, as: UTF8.self) }
        let problems: [(rank: Int, message: String)] = verdicts.enumerated().compactMap { rank, v in
            if v.hasPrefix("error ") { return (rank, String(v.dropFirst(6))) }
            if v != verdicts[router], !verdicts[router].hasPrefix("error ") {
                return (rank, "its model (config.json and weight index, or for a node's shard the model it was cut from) differs from rank 0's copy of \(options.model.path): every rank must load the same model")
            }
            return nil
        }
        var failed: [Int32] = [problems.isEmpty ? 0 : 1]
        try failed.withUnsafeMutableBufferPointer { try world.broadcast($0, root: router) }
        guard failed[0] == 0, case .success(let (config, layout, manifest)) = verdict else {
            let messages = Dictionary(grouping: problems) { $0.message }
            let report = messages.sorted { $0.value[0].rank < $1.value[0].rank }.map { message, ranks in
                ranks.count == world.size ? message : "rank \(ranks.map { String($0.rank) }.joined(separator: ", ")): \(message)"
            }
            throw ClusterStartError(message: report.joined(separator: "\n"), printedBy: world.rank == router)
        }
        let role = layout.role(of: world.rank)
        let expertComm = try world.split(color: role == .attention ? nil : 1, key: world.rank)
        // Routers and expert ranks, in world-rank order (the split's key).
        let expertCommRanks = (layout.routerRanks + layout.expertRanks).sorted()

        let part = Result { () throws -> (part: Part, diskBytes: Int) in
            try manifest?.check(rank: world.rank, layout: layout, config: config, directory: options.model, host: host,
                                checksums: options.verifyChecksums)
            let checkpoint = try Checkpoint(directory: options.model)
            let loaded: Part
            switch role {
            case .router where world.rank == router:
                loaded = .router(try RouterRank(world: world, expertComm: expertComm!, expertCommRanks: expertCommRanks,
                                                layout: layout, checkpoint: checkpoint), checkpoint)
            case .router:
                loaded = .groupRouter(try MoERouter(world: world, expertComm: expertComm!, expertCommRanks: expertCommRanks,
                                                    layout: layout, checkpoint: checkpoint), checkpoint)
            case .attention:
                loaded = .attention(try DeepseekModel(checkpoint: checkpoint, localRouted: false), checkpoint)
            case .expert:
                // Each layer's own experts: a replica is loaded where the layout puts it, nothing else.
                let layers = try config.moeLayers.map {
                    try RoutedExperts(checkpoint: checkpoint, layer: $0, held: layout.experts(heldBy: world.rank, layer: $0))
                }
                loaded = .expert(layers, checkpoint)
            }
            if options.lockWeights { try checkpoint.lockMappedWeights() }
            return (loaded, try checkpoint.weightFileBytes())
        }

        let report: ControlMessage = switch part {
        case .success(let (p, diskBytes)):
            .hello(Hello(rank: world.rank, host: host, role: RankRole(role), experts: layout.experts(heldBy: world.rank),
                         residentWeightBytes: p.checkpoint.residentBytes, pid: Int(getpid()),
                         diskBytes: diskBytes, modelDirectory: options.model.standardizedFileURL.path))
        case .failure(let e as WeightLockError):
            .errorReport(ErrorReport(rank: world.rank, code: .internal, message: e.message(host: host, rank: world.rank)))
        case .failure(let e):
            .errorReport(ErrorReport(rank: world.rank, code: .internal, message: "\(e)"))
        }
        let reports = try world.gather(bytes: report.encode(senderRank: world.rank), root: router)
        var hellos: [Hello] = []
        var failures: [String] = []
        if world.rank == router {
            for (r, bytes) in reports.enumerated() {
                switch try ControlMessage.decode(bytes, from: r) {
                case .hello(let h): hellos.append(h)
                case .errorReport(let e): failures.append("rank \(e.rank) (\(layout.role(of: e.rank).rawValue)): \(e.message)")
                default: failures.append("rank \(r) sent an unexpected start-up message")
                }
            }
        }
        var go: [Int32] = [failures.isEmpty ? 1 : 0]
        try go.withUnsafeMutableBufferPointer { try world.broadcast($0, root: router) }
        guard go[0] == 1 else {
            throw ClusterStartError(message: failures.joined(separator: "\n"), printedBy: world.rank == router)
        }
        if world.rank == router {
            let table = layout.table(Dictionary(uniqueKeysWithValues: hellos.map {
                ($0.rank, RankFootprint(host: $0.host, residentBytes: $0.residentWeightBytes, modelDirectory: $0.modelDirectory,
                                        diskBytes: $0.diskBytes))
            }))
            FileHandle.standardError.write(Data((table.hasSuffix("\n") ? table : table + "\n").utf8))
        }

        switch try part.get().part {
        case .router(let r, _):
            return ClusterSession(router: r, ranks: hellos, modelFingerprint: try fingerprint.get())
        case .groupRouter(let moe, _):
            try GroupRouterRank(router: moe, root: router).run()
        case .attention(let model, _):
            try AttentionRank(world: world, root: router, router: layout.router(serving: world.rank), model: model).run()
        case .expert(let layers, _):
            let plane = ExpertDataPlane(comm: expertComm!, routers: layout.routerRanks.map { expertCommRanks.firstIndex(of: $0)! },
                                        hidden: config.hiddenSize, topK: config.numExpertsPerTok)
            try ExpertRank(world: world, router: router, plane: plane, experts: layers).run()
        }
        try MPIRuntime.finalize()
        return nil
    }

    private enum Part {
        case router(RouterRank, Checkpoint)
        case groupRouter(MoERouter, Checkpoint)
        case attention(DeepseekModel, Checkpoint)
        case expert([RoutedExperts], Checkpoint)

        var checkpoint: Checkpoint {
            switch self {
            case .router(_, let c), .groupRouter(_, let c), .attention(_, let c), .expert(_, let c): c
            }
        }
    }
}

/// A start-up failure every rank knows of; rank 0 prints it, all ranks exit non-zero.
public struct ClusterStartError: Error, CustomStringConvertible {
    public let message: String
    public let printedBy: Bool
    public var description: String { message }
}

extension RankRole {
    init(_ role: ClusterLayout.Role) {
        switch role {
        case .router: self = .router
        case .attention: self = .attention
        case .expert: self = .expert
        }
    }
}

/// Which model a directory holds, as ranks compare it at start-up and as recorded expert
/// load names it: FNV-1a over config.json and the weight index, or for a node's shard
/// (`conclave shard`) the fingerprint of the model it was cut from.
public enum ModelFingerprint {
    /// `host` labels errors reading a shard's manifest.
    public static func of(_ directory: URL, host: String = MPIRuntime.processorName) throws -> String {
        try ShardManifest.read(in: directory, host: host)?.sourceFingerprint ?? modelFingerprint(directory)
    }
}

/// FNV-1a over config.json and the weight index: cheap, and enough to tell copies apart.
func modelFingerprint(_ model: URL) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for file in [Checkpoint.configFile, Checkpoint.indexFile] {
        guard let data = try? Data(contentsOf: model.appendingPathComponent(file)) else { continue }
        for byte in data {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
    }
    return String(hash, radix: 16)
}
