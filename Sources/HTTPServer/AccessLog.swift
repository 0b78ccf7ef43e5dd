import Foundation
import Logging
import Serving

/// One structured line per completion request on stderr, written once its answer is
/// complete (or failed): id, status, token counts, time to first token and total time.
struct AccessLog: Sendable {
    let id: String
    let path: String
    let started: UInt64
    let logger: Logger
    var promptTokens = 0
    var completionTokens = 0
    var timing: RequestTiming?

    init(id: String, path: String, started: UInt64, logger: Logger) {
        self.id = id
        self.path = path
        self.started = started
        self.logger = logger
    }

    func write(status: Int) {
        let total = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        var metadata: Logger.Metadata = [
            "id": "\(id)", "path": "\(path)", "status": "\(status)",
            "prompt_tokens": "\(promptTokens)", "completion_tokens": "\(completionTokens)",
            "total_ms": "\(String(format: "%.1f", total * 1000))",
        ]
        if let ttft = timing?.timeToFirstToken { metadata["ttft_ms"] = "\(String(format: "%.1f", ttft * 1000))" }
        logger.info("request", metadata: metadata)
    }
}
