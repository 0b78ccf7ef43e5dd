import Foundation

/// The machine the benchmark ran on, for the report's header.
public struct HostInfo: Encodable, Sendable {
    public var cpu: String
    public var cores: Int

    public init(cpu: String, cores: Int) {
        self.cpu = cpu
        self.cores = cores
    }

    public static func current() -> HostInfo {
        HostInfo(cpu: cpuModel() ?? "unknown CPU", cores: ProcessInfo.processInfo.activeProcessorCount)
    }

    /// The first "model name" of /proc/cpuinfo; nil off Linux, or where the kernel omits it.
    private static func cpuModel() -> String? {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line?.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
