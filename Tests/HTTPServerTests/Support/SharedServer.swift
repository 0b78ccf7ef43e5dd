import Foundation
import TestSupport
import Testing

/// A suite trait: one `conclave serve` on a fresh tiny model for the whole suite, started before
/// its first test and killed (with a leftover check) after its last. Tests reach it through
/// `SharedServer.connection`.
struct SharedServer: SuiteTrait, TestScoping {
    /// Extra `serve` options.
    var options: [String] = []
    /// Weights of the tiny model: "bf16" (the preset's) or "f32".
    var dtype = "bf16"
    /// The model directory's name, which is the served name unless `--served-model-name` says otherwise.
    var directoryName = "tiny"
    var apiKey: String?

    @TaskLocal static var current: OpenAIConnection?

    /// The suite's server.
    static var connection: OpenAIConnection {
        get throws { try #require(current, "no server: the suite lacks the .sharedServer trait") }
    }

    /// The name clients send: `--served-model-name`, or the directory's name.
    var servedName: String {
        if let i = options.firstIndex(of: "--served-model-name"), i + 1 < options.count { options[i + 1] } else { directoryName }
    }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await TinyServer.run(options: options, dtype: dtype, directoryName: directoryName) { server, model in
            let connection = OpenAIConnection(baseURL: server.baseURL, model: servedName, modelDirectory: model, apiKey: apiKey)
            try await connection.waitUntilReady()
            try await Self.$current.withValue(connection) { try await function() }
        }
    }
}

extension Trait where Self == SharedServer {
    static func sharedServer(_ options: [String] = [], dtype: String = "bf16", directoryName: String = "tiny",
                             apiKey: String? = nil) -> SharedServer {
        SharedServer(options: options, dtype: dtype, directoryName: directoryName, apiKey: apiKey)
    }
}

/// Servers on a fresh tiny model for one test (or one suite): the model is written to a
/// temporary directory and removed after the server has been stopped.
enum TinyServer {
    static func run<T>(options: [String] = [], dtype: String = "bf16", directoryName: String = "tiny",
                       sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: (ServerProcess, URL) async throws -> T) async throws -> T {
        let model = try Conclave.tinyModel(named: directoryName, dtype: dtype, sourceLocation: sourceLocation)
        defer { try? FileManager.default.removeItem(at: model.deletingLastPathComponent()) }
        return try await ServerProcess.run(model: model, options: options, sourceLocation: sourceLocation) { server in
            try await body(server, model)
        }
    }

    /// A connection to `server` serving `model` under its directory's name.
    static func connection(_ server: ServerProcess, _ model: URL, apiKey: String? = nil) -> OpenAIConnection {
        OpenAIConnection(baseURL: server.baseURL, model: model.lastPathComponent, modelDirectory: model, apiKey: apiKey)
    }
}
