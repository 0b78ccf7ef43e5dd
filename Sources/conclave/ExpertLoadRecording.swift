import ArgumentParser
import Checkpoint
import Cluster
import Engine
import ExpertLoad
import Foundation

/// `--record-expert-load FILE` on `generate` and `serve`.
struct ExpertLoadOption: ParsableArguments {
    @Option(name: .customLong("record-expert-load"),
            help: "Write the tokens routed to each expert of every MoE layer over this run as JSON (the model's fingerprint, the time window and steps, per layer the counts by expert id), the input of plan-placement. In one process the local gates count; under mpirun, the router (rank 0) writes it (layouts with one router).")
    var recordExpertLoad: String?
}

/// Records what the executor's gates routed, from when it is made to each `write`.
final class ExpertLoadRecorder {
    let file: URL
    let model: URL
    let config: ModelConfig
    let fingerprint: String
    let source: CountsExpertLoad
    let start = Date()
    private(set) var lastWrite = Date()

    init(file: URL, model: URL, executor: Executor) throws {
        switch executor {
        case .local(let runner):
            source = runner
            fingerprint = try ModelFingerprint.of(model)
        case .cluster(let session):
            // Rank 0 counts only its own routers' tokens during a run; the others' reach it at shutdown.
            let routers = session.router.layout.routerRanks.count
            guard routers == 1 else {
                throw ValidationError("--record-expert-load counts what rank 0's router gates; this layout has \(routers) routers, whose tokens it would miss: record with a one-router layout")
            }
            source = session.router
            fingerprint = session.modelFingerprint
        }
        self.file = file
        self.model = model
        config = try ModelConfig(contentsOf: model.appendingPathComponent(Checkpoint.configFile))
    }

    /// The counts so far, every MoE layer included (zeros before any step reached it).
    var record: ExpertLoadRecord {
        let counts = source.expertLoad
        let layers = config.moeLayers.map { l in
            ExpertLoadRecord.Layer(layer: l, tokensPerExpert: counts.tokensPerExpert[l] ?? Array(repeating: 0, count: config.nRoutedExperts))
        }
        return ExpertLoadRecord(modelFingerprint: fingerprint, model: model.path, routedExperts: config.nRoutedExperts,
                                expertsPerToken: config.numExpertsPerTok, groups: max(config.nGroup, 1),
                                groupsPerToken: max(config.topkGroup, 1),
                                window: .init(start: start, end: Date(), steps: counts.steps, tokens: counts.tokens), layers: layers)
    }

    /// Writes (or rewrites) the file with the counts so far.
    func write() throws {
        let record = record
        do {
            try record.write(to: file)
        } catch {
            throw ValidationError("cannot write --record-expert-load \(file.path): \((error as NSError).localizedDescription)")
        }
        lastWrite = Date()
        log.info("recorded expert load of \(record.window.steps) steps (\(record.window.tokens) tokens) to \(file.path)")
    }

    /// Rewrites the file when `seconds` have passed since the last write (a server's periodic record).
    func writeIfDue(every seconds: Double) throws {
        if Date().timeIntervalSince(lastWrite) >= seconds { try write() }
    }
}
