/// One event of an OpenAI-style stream: a JSON payload, or the `[DONE]` sentinel that ends it.
public enum StreamEvent: Equatable, Sendable {
    case data(String)
    case done
}

/// Splits a server-sent-event byte stream into events. Network reads end anywhere (mid-line,
/// mid-event, inside a UTF-8 character), so bytes wait in a buffer until the blank line that
/// ends their event arrives; an event the stream never ends is dropped, as the SSE spec says.
public struct ServerSentEventParser: Sendable {
    private var buffer: [UInt8] = []

    public init() {}

    /// The events that `bytes` completes, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [StreamEvent] {
        // JSON payloads never hold a raw CR, so dropping CRs turns CRLF framing into LF framing.
        buffer.append(contentsOf: bytes.lazy.filter { $0 != UInt8(ascii: "\r") })
        var events: [StreamEvent] = []
        var start = 0
        while let end = blankLine(from: start) {
            if let event = Self.event(buffer[start..<end]) { events.append(event) }
            start = end + 2
        }
        buffer.removeFirst(start)
        return events
    }

    /// Where the next "\n\n" at or after `start` begins.
    private func blankLine(from start: Int) -> Int? {
        var i = start
        while i + 1 < buffer.count {
            if buffer[i] == UInt8(ascii: "\n") && buffer[i + 1] == UInt8(ascii: "\n") { return i }
            i += 1
        }
        return nil
    }

    /// The event of one block of lines: its `data:` lines joined by newlines (other fields and
    /// `:` comments carry nothing a completion stream needs); nil when it has no data.
    private static func event(_ block: ArraySlice<UInt8>) -> StreamEvent? {
        let data = block.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).compactMap { line -> String? in
            guard line.starts(with: "data:".utf8) else { return nil }
            var value = line.dropFirst(5)
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
            return String(decoding: value, as: UTF8.self)
        }
        guard !data.isEmpty else { return nil }
        let payload = data.joined(separator: "\n")
        return payload == "[DONE]" ? .done : .data(payload)
    }
}
