import Foundation

/// The processor a benchmark ran on, from `/proc/cpuinfo`. `conclave bench` prints it first:
/// the project's machines are Zen 4, Zen 5 or Xeons, whose bf16 throughput differs by 2× and
/// more, so a rate or a peak means something to another reader only beside its CPU.
public struct CPUInfo: Equatable, Sendable {
    /// `model name` (e.g. "AMD EPYC 9R45"), `cpu family` and `model` of the first processor:
    /// with the vendor, family and model tell core generations apart (AMD 25 is Zen 4, 26 Zen 5).
    public var modelName: String?
    public var family: Int?
    public var model: Int?
    /// Logical processors listed (`processor` entries), as `nproc` counts them without affinity limits.
    public var cores: Int?
    /// Every flag of the first processor.
    public var flags: Set<String>

    /// Flags that decide which kernels run: AVX2 and FMA are the Swift kernels' target,
    /// AVX-512 with bf16 dot products or AMX tiles are what oneDNN's bf16 matmul can use.
    public static let flagsOfInterest = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]

    /// Parses the text of `/proc/cpuinfo` ("key<tabs>: value" lines, a block per processor);
    /// fields it lacks stay nil.
    public init(cpuinfo: String) {
        var fields: [String: String] = [:]
        var processors = 0
        for line in cpuinfo.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            if key == "processor" { processors += 1 }
            if fields[key] == nil { fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        modelName = fields["model name"]
        family = fields["cpu family"].flatMap { Int($0) }
        model = fields["model"].flatMap { Int($0) }
        cores = processors > 0 ? processors : nil
        flags = Set((fields["flags"] ?? "").split(separator: " ").map(String.init))
    }

    /// This machine's; every field nil where `/proc/cpuinfo` cannot be read (not Linux).
    public static func current() -> CPUInfo {
        CPUInfo(cpuinfo: (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "")
    }

    /// One line, e.g. "AMD EPYC 9R45, cpu family 26, model 2, 2 cores; avx2 avx512f avx512_bf16, no amx_bf16".
    public var summary: String {
        let identity = [modelName ?? "unknown CPU", family.map { "cpu family \($0)" }, model.map { "model \($0)" },
                        cores.map { $0 == 1 ? "1 core" : "\($0) cores" }].compactMap { $0 }.joined(separator: ", ")
        guard !flags.isEmpty else { return identity + "; flags unknown" }
        let have = Self.flagsOfInterest.filter(flags.contains), lack = Self.flagsOfInterest.filter { !flags.contains($0) }
        return identity + "; " + [have.joined(separator: " "), lack.isEmpty ? nil : "no " + lack.joined(separator: ", no ")]
            .compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
    }
}
