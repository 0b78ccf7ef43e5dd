/// Turns generated ids into text as they arrive. A token can end inside a
/// multibyte character (byte-level BPE splits emoji and CJK across tokens), so
/// an incomplete UTF-8 sequence at the end is held back until its remaining
/// bytes arrive. The pieces returned concatenate to `decode` of all ids.
public struct StreamingDecoder: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecial: Bool
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer, skipSpecial: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// The text completed by `id`; empty while a character is still partial.
    public mutating func append(_ id: Int) throws -> String {
        pending += try tokenizer.bytes(of: id, skipSpecial: skipSpecial)
        let cut = Self.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Whatever is held back, with an unfinished character as U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of `bytes` without a trailing lead byte whose sequence is still
    /// short. Cutting just before a lead byte never splits what lossy decoding
    /// would treat as one unit, so decoding the parts separately is exact.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var start = bytes.count
        // A sequence is at most 4 bytes: look back past up to 3 continuations.
        while start > 0 && bytes.count - start < 4 {
            start -= 1
            let byte = bytes[start]
            if byte & 0xC0 == 0x80 { continue }
            let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
            return bytes.count - start < length ? start : bytes.count
        }
        return bytes.count
    }
}
