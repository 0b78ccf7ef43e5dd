import Foundation

/// An Open MPI hostfile: the nodes of a job and how many ranks each runs, in file order.
///
/// Syntax as Open MPI 4.1 reads it: one node per line, `node slots=N` (`count`/`cpu` are
/// synonyms, `max_slots=N` and its spellings cap oversubscription and are accepted), `#`
/// starts a comment, blank lines are skipped, `user@node` names the node `node`, and a node
/// listed twice adds up. Ranks land as `mpirun --map-by slot` (the default) puts them: the first
/// node's slots take ranks `0..<slots`, the next node's the following ones, and so on.
public struct Hostfile: Sendable, Equatable {
    public struct Node: Sendable, Equatable {
        public let name: String
        public let slots: Int
        /// The world ranks mpirun places on this node.
        public let ranks: Range<Int>
    }

    /// In file order.
    public let nodes: [Node]
    /// Where the hostfile came from, for messages.
    public let source: String

    public var totalSlots: Int { nodes.last?.ranks.upperBound ?? 0 }

    /// The node world rank `rank` runs on.
    public func node(ofRank rank: Int) -> Node? {
        nodes.first { $0.ranks.contains(rank) }
    }

    public init(contentsOf url: URL) throws(HostfileError) {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw .unreadable(reason: (error as NSError).localizedDescription, source: url.path)
        }
        try self.init(text: text, source: url.path)
    }

    static let slotKeys: Set<String> = ["slots", "count", "cpu"]
    static let maxSlotKeys: Set<String> = ["max_slots", "max-slots", "slots_max", "slots-max", "cpu_max", "cpu-max",
                                           "max_cpu", "max-cpu", "count_max", "count-max", "max_count", "max-count"]

    public init(text: String, source: String) throws(HostfileError) {
        var order: [String] = []
        var slots: [String: Int] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            // Open MPI allows spaces around "=".
            let content = rawLine.prefix { $0 != "#" }
                .replacingOccurrences(of: #"\s*=\s*"#, with: "=", options: .regularExpression)
            let words = content.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let first = words.first else { continue }
            let name = first.split(separator: "@").last.map(String.init) ?? first
            guard !name.isEmpty, !name.contains("=") else {
                throw .invalidLine(line: line, text: String(rawLine), reason: "a line starts with a node name", source: source)
            }
            var count: Int?
            for word in words.dropFirst() {
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else {
                    throw .invalidLine(line: line, text: String(rawLine), reason: "\"\(word)\" is not key=value", source: source)
                }
                guard let value = Int(parts[1]), value >= 0 else {
                    throw .invalidLine(line: line, text: String(rawLine), reason: "\(parts[0]) must be a whole number, got \"\(parts[1])\"", source: source)
                }
                if Self.slotKeys.contains(parts[0]) {
                    count = value
                } else if !Self.maxSlotKeys.contains(parts[0]) {
                    throw .invalidLine(line: line, text: String(rawLine),
                                       reason: "unknown key \"\(parts[0])\"; conclave reads slots=N (and accepts max_slots=N)", source: source)
                }
            }
            // Without slots=, Open MPI gives a node one slot per core of that node, which only it can see.
            guard let count else { throw .missingSlots(node: name, line: line, source: source) }
            if slots[name] == nil { order.append(name) }
            slots[name, default: 0] += count
        }
        var nodes: [Node] = []
        var next = 0
        for name in order where slots[name]! > 0 {
            nodes.append(Node(name: name, slots: slots[name]!, ranks: next..<(next + slots[name]!)))
            next += slots[name]!
        }
        guard !nodes.isEmpty else { throw .noSlots(source: source) }
        self.nodes = nodes
        self.source = source
    }
}

/// Why a hostfile cannot be used. Each message names the file (and line) and what to write.
public enum HostfileError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(reason: String, source: String)
    case invalidLine(line: Int, text: String, reason: String, source: String)
    /// A node without `slots=N`.
    case missingSlots(node: String, line: Int, source: String)
    /// No node with a slot.
    case noSlots(source: String)

    public var description: String {
        switch self {
        case .unreadable(let reason, let source):
            "cannot read hostfile \(source): \(reason)"
        case .invalidLine(let line, let text, let reason, let source):
            "\(source):\(line): \"\(text.trimmingCharacters(in: .whitespaces))\": \(reason); a line reads \"node-a slots=4\""
        case .missingSlots(let node, let line, let source):
            "\(source):\(line): node \(node) has no slots=N; Open MPI would give it one slot per core of that node, which conclave cannot know: write \(node) slots=N"
        case .noSlots(let source):
            "hostfile \(source) lists no node with a slot; write one line per node, e.g. \"node-a slots=4\""
        }
    }
}
