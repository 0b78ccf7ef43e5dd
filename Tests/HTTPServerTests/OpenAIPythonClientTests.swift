import Foundation
import TestSupport
import Testing

/// The official OpenAI Python client against a real server: `tools/openai-client-check.py`
/// run with the `openai` package from `.venv-openai` (which `tools/test` creates).
/// Set CONCLAVE_SKIP_OPENAI_CLIENT=1 to skip it explicitly.
@Suite(.disabled(if: ProcessInfo.processInfo.environment["CONCLAVE_SKIP_OPENAI_CLIENT"] == "1",
                 "CONCLAVE_SKIP_OPENAI_CLIENT=1"),
       .timeLimit(.minutes(2)))
struct OpenAIPythonClient {
    static let python = Conclave.packageRoot.appendingPathComponent(".venv-openai/bin/python")
    static let script = Conclave.packageRoot.appendingPathComponent("tools/openai-client-check.py")

    @Test func officialClientGetsConsistentAnswers() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.python.path),
                     "\(Self.python.path) is missing: run tools/test (it creates .venv-openai with the openai package), or set CONCLAVE_SKIP_OPENAI_CLIENT=1 to skip this test")
        try await TinyServer.run { server, model in
            try await TinyServer.connection(server, model).waitUntilReady()
            let check = try MPIJob(executable: Self.python.path, arguments: [Self.script.path, server.baseURL, model.lastPathComponent],
                                   environment: Conclave.childEnvironment)
            let result = await check.finish(within: 90)
            #expect(result.succeeded, "\(result.report)")
            #expect(result.stdout.contains(": passed"), "\(result.report)")
            #expect(result.leftovers.isEmpty, "\(result.leftovers)")
        }
    }
}
