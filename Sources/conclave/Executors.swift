import ArgumentParser
import Checkpoint
import Cluster
import Engine
import Foundation
import Logging
import Model
import Transport

struct ClusterArguments: ParsableArguments {
    @Option(help: "Under mpirun: a rank layout JSON file (configs/layouts/); default: rank 0 router, then attention ranks, then expert ranks with experts split contiguously.")
    var layout: String?

    @Option(name: .customLong("attention-ranks"), help: "Under mpirun without --layout: how many attention ranks the default layout has.")
    var attentionRanks: Int?

    @Option(name: .customLong("profile-out"), help: "Under mpirun: write the all-to-all profile (and the rank table) as JSON to this file.")
    var profileOut: String?

    @Flag(help: "Lock the loaded weights in RAM (mlock): a host that cannot hold its share fails at start-up with the shortfall in bytes instead of paging while it serves. Needs RLIMIT_MEMLOCK (ulimit -l, memlock in limits.conf) above each process's weights, or CAP_IPC_LOCK.")
    var mlock = false

    @Flag(inversion: .prefixedNo, help: "Under mpirun with a node's shard (conclave shard): hash every file a rank reads against conclave-shard.json before loading. Sizes, ranks and tensor lists are checked either way; hashing costs a read of the rank's share.")
    var verifyChecksums = true
}

/// Where steps run: this process's whole model, or — under mpirun with several ranks —
/// the cluster, driven from rank 0 while every other rank serves its role.
enum Executor {
    case local(ModelRunner)
    case cluster(ClusterSession)

    var stepExecutor: StepExecutor {
        switch self {
        case .local(let runner): runner
        case .cluster(let session): session.router
        }
    }

    /// The whole model in this process, its mapped weights locked in RAM when asked.
    private static func local(model: URL, lockingWeights: Bool) throws -> Executor {
        if let shard = try ShardManifest.read(in: model, host: MPIRuntime.processorName), shard.ranks.count < shard.worldSize {
            throw ValidationError("\(model.path) is node \(shard.host)'s shard of a \(shard.worldSize)-rank cluster (conclave shard): run it under mpirun with every node's directory, or use the whole model \(shard.sourceModel)")
        }
        let checkpoint = try Checkpoint(directory: model)
        let runner = ModelRunner(model: try DeepseekModel(checkpoint: checkpoint))
        if lockingWeights { try checkpoint.lockMappedWeights() }
        return .local(runner)
    }

    /// Runs `body` on rank 0 (or the only process) with the executor; other ranks serve
    /// until the cluster shuts down. Cluster failures end the whole job non-zero.
    /// `beforeLoading` runs on rank 0 only, before any weight is loaded.
    static func run(model: URL, cluster: ClusterArguments, beforeLoading: () throws -> Void = {},
                    configure: (Executor) -> Void = { _ in }, _ body: (Executor) throws -> Void) throws {
        guard MPIRuntime.isRunningUnderMPI else {
            try beforeLoading()
            let executor = try local(model: model, lockingWeights: cluster.mlock)
            configure(executor)
            return try body(executor)
        }
        let world = try MPIRuntime.start()
        log[metadataKey: "rank"] = "\(world.rank)"
        if world.size == 1 {
            try beforeLoading()
            let executor = try local(model: model, lockingWeights: cluster.mlock)
            configure(executor)
            try body(executor)
            return try MPIRuntime.finalize()
        }
        do {
            if world.rank == 0 { try beforeLoading() }
            let options = ClusterOptions(model: model, layoutFile: cluster.layout.map { URL(fileURLWithPath: $0) },
                                         attentionRanks: cluster.attentionRanks, verifyChecksums: cluster.verifyChecksums,
                                         lockWeights: cluster.mlock)
            guard let session = try ClusterLauncher.start(options, world: world) else { return }
            log[metadataKey: "role"] = "router"
            let executor = Executor.cluster(session)
            configure(executor)
            do {
                try body(executor)
            } catch where !session.router.isInStep {
                // Between steps every other rank waits for the next plan: shut them down cleanly.
                log.error("\(error)")
                _ = try session.finish(reason: "\(error)")
                throw ExitCode(1)
            }
            let profile = try session.finish()
            report(profile.text)
            if let path = cluster.profileOut {
                var json = profile.json
                json["ranks"] = session.ranksJSON
                try Data(try jsonText(json).utf8).write(to: URL(fileURLWithPath: path))
            }
        } catch let error as ClusterStartError {
            if error.printedBy { log.error("\(error)") }
            try? MPIRuntime.finalize()
            throw ExitCode(1)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            log.error("\(error)")
            MPIRuntime.abort(code: 1)
        }
    }
}
