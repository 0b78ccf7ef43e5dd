import Foundation

/// The transformers-generated checkpoints under `Tests/Fixtures/models` (see tools/make-fixtures).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static let modelCases = ["v3-sigmoid-grouped", "v3-yarn-sharded", "v2-softmax-plainq", "v3-fp8", "v3-bf16", "v3-fp8-release"]

    static func model(_ name: String) -> URL { root.appendingPathComponent("models/\(name)") }

    /// What transformers computed for a fixture checkpoint.
    struct Reference: Decodable {
        struct Routing: Decodable {
            let layer: Int
            let experts: [[Int]]
        }

        let prompt: [Int]
        let logits: [[Float]]
        let greedy: [Int]
        let routing: Routing
    }

    static func reference(_ name: String) throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: model(name).appendingPathComponent("reference.json")))
    }
}
