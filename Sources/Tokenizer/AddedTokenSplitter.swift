/// Cuts added tokens (specials, chat markers) out of raw text before
/// pre-tokenization, so they are never split or merged. Like Hugging Face's
/// leftmost-longest matcher: the earliest match wins, the longest at a tie.
struct AddedTokenSplitter: Sendable {
    enum Segment: Equatable {
        case text(String)
        case token(Int)
    }

    /// Candidates by their first UTF-8 byte, longest first.
    private let candidates: [[(bytes: [UInt8], id: Int)]]

    init(_ tokens: [(content: String, id: Int)]) {
        var candidates = [[(bytes: [UInt8], id: Int)]](repeating: [], count: 256)
        for token in tokens where !token.content.isEmpty {
            let bytes = Array(token.content.utf8)
            candidates[Int(bytes[0])].append((bytes, token.id))
        }
        self.candidates = candidates.map { $0.sorted { $0.bytes.count > $1.bytes.count } }
    }

    func segments(_ text: String) -> [Segment] {
        let bytes = Array(text.utf8)
        var segments: [Segment] = []
        var textStart = 0
        var position = 0
        // Added tokens start with a whole scalar, so every cut falls on a
        // scalar boundary and the text between cuts stays valid UTF-8.
        scan: while position < bytes.count {
            for candidate in candidates[Int(bytes[position])]
            where bytes[position...].starts(with: candidate.bytes) {
                if textStart < position {
                    segments.append(.text(String(decoding: bytes[textStart..<position], as: UTF8.self)))
                }
                segments.append(.token(candidate.id))
                position += candidate.bytes.count
                textStart = position
                continue scan
            }
            position += 1
        }
        if textStart < bytes.count {
            segments.append(.text(String(decoding: bytes[textStart...], as: UTF8.self)))
        }
        return segments
    }
}
