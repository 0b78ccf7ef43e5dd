import ArgumentParser

@main
struct Conclave: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conclave",
        abstract: "Serve DeepSeek-V3/V2-class Mixture-of-Experts models, on one process or across MPI ranks.",
        subcommands: [Generate.self, Serve.self, Logits.self, Tokenize.self, InitModel.self, Shard.self, Bench.self, BenchServe.self, Plan.self, PlanPlacement.self]
    )
}
