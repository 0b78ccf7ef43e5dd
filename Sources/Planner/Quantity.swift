import Foundation

/// Sizes and rates as operators write them: `512GiB`, `64G`, `200GB/s`, `25gbit`, `10Gbps`.
public enum Quantity {
    public struct ParseError: Error, CustomStringConvertible {
        public let text: String
        public let expected: String
        public var description: String { "'\(text)' is not \(expected)" }
    }

    /// Bytes: a number with an optional unit B, KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB, K/M/G/T (powers of 1024).
    public static func bytes(_ text: String) throws(ParseError) -> Double {
        let kib = 1024.0, mib = kib * 1024, gib = mib * 1024, tib = gib * 1024
        let units: [(String, Double)] = [
            ("kib", kib), ("mib", mib), ("gib", gib), ("tib", tib),
            ("kb", 1e3), ("mb", 1e6), ("gb", 1e9), ("tb", 1e12),
            ("k", kib), ("m", mib), ("g", gib), ("t", tib), ("b", 1),
        ]
        return try scaled(text, units: units, expected: "a size such as 512GiB, 64G or 1TB")
    }

    /// Bytes per second: a size followed by `/s` (`200GB/s`, `50GiB/s`).
    public static func bytesPerSecond(_ text: String) throws(ParseError) -> Double {
        let lower = text.lowercased()
        guard lower.hasSuffix("/s") else { throw ParseError(text: text, expected: "a bandwidth such as 200GB/s") }
        do {
            return try bytes(String(text.dropLast(2)))
        } catch {
            throw ParseError(text: text, expected: "a bandwidth such as 200GB/s")
        }
    }

    /// A link rate in bits per second, as `tc` and NIC vendors write it (`25gbit`, `100mbit`, `10Gbps`); returns bytes per second.
    public static func linkRate(_ text: String) throws(ParseError) -> Double {
        let units: [(String, Double)] = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("gbps", 1e9), ("mbps", 1e6), ("kbps", 1e3), ("bit", 1)]
        return try scaled(text, units: units, expected: "a link rate such as 25gbit or 100Gbps") / 8
    }

    private static func scaled(_ text: String, units: [(String, Double)], expected: String) throws(ParseError) -> Double {
        let lower = text.lowercased().trimmingCharacters(in: .whitespaces)
        for (unit, factor) in units where lower.hasSuffix(unit) {
            if let value = Double(lower.dropLast(unit.count)), value > 0 { return value * factor }
        }
        if let value = Double(lower), value > 0, units.contains(where: { $0.0 == "b" }) { return value }
        throw ParseError(text: text, expected: expected)
    }
}
