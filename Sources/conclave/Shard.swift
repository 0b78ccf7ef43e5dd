import ArgumentParser
import Checkpoint
import Cluster
import Foundation

struct Shard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cut a model into one directory per node of a hostfile, each holding only the tensors that node's ranks load.",
        discussion: """
            Writes OUT/<node>/ for every node of the hostfile: config and tokenizer files, safetensors files (and index) with \
            only the tensors of the ranks mpirun places on that node (--map-by slot: the first node's slots take ranks 0, 1, ...), \
            in their stored dtype, and conclave-shard.json (the source model's fingerprint, the node's ranks and roles, every \
            file's size and SHA-256 and the tensors it holds). Router and attention nodes get no routed experts; an expert node \
            gets only its experts. Copy each node's directory to that node and pass its path as --model: every rank checks its \
            directory against the manifest before loading.
            """)

    @OptionGroup var model: ModelOption

    @Option(help: "Open MPI hostfile (\"node-a slots=4\" per line) of the job the shards are for: one directory per node, named as the hostfile names it.")
    var hostfile: String

    @Option(help: "Rank layout JSON file (configs/layouts/) the job will run with; default: the default layout for the hostfile's total slots.")
    var layout: String?

    @Option(name: .customLong("attention-ranks"), help: "Without --layout: how many attention ranks the default layout has (as the job's own --attention-ranks).")
    var attentionRanks: Int?

    @Option(help: "Directory to write the node directories into (created if missing).")
    var out: String

    @Option(name: .customLong("max-file-bytes"), help: "Largest safetensors file to write: a node's weights above it are split into model-0000i-of-0000n.safetensors with an index.")
    var maxFileBytes = 5 << 30

    func validate() throws {
        guard maxFileBytes > 0 else { throw ValidationError("--max-file-bytes must be positive") }
    }

    func run() throws {
        let start = Date()
        let checkpoint = try Checkpoint(directory: model.url)
        let hosts = try Hostfile(contentsOf: URL(fileURLWithPath: hostfile))
        let layout = try ShardPlan.layout(for: hosts, layoutFile: self.layout.map { URL(fileURLWithPath: $0) },
                                          attentionRanks: attentionRanks, routedExperts: checkpoint.config.nRoutedExperts,
                                          moeLayers: checkpoint.config.moeLayers)
        let plan = try ShardPlan(hostfile: hosts, layout: layout, config: checkpoint.config, tensorNames: checkpoint.tensorNames)
        let written = try ModelSharder.write(plan, from: checkpoint, to: URL(fileURLWithPath: out), maxFileBytes: maxFileBytes)
        report(NodeShardSummary.table(written))
        let line = String(format: "wrote %d node directories to %@ in %.1f s; copy each to its node and pass it as --model",
                          written.count, out, Date().timeIntervalSince(start))
        log.info("\(line)")
    }
}
