import Foundation
import Testing
@testable import Checkpoint

/// A fresh temporary directory, removed when the value is dropped by `withTemporaryDirectory`.
func withTemporaryDirectory<R>(_ body: (URL) throws -> R) throws -> R {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}

/// Writes `config` as the directory's config.json.
func writeConfig(_ config: ModelConfig = ModelConfig(defaultsFor: .deepseekV3), to directory: URL) throws {
    try config.jsonData().write(to: directory.appendingPathComponent("config.json"))
}

/// A safetensors file from a literal header and data; `declaredLength` overrides the length prefix.
func rawSafetensors(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
    let h = Array(header.utf8)
    var out = Data()
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: h)
    out.append(contentsOf: data)
    return out
}

/// The error `body` throws, as text (fails the test if nothing is thrown).
func errorText(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> String {
    do {
        try body()
    } catch {
        return "\(error)"
    }
    Issue.record("expected an error", sourceLocation: sourceLocation)
    return ""
}

/// Little-endian bytes of f32 values.
func bytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
}
