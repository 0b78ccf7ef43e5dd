/// Splits text into the pieces BPE encodes independently, following the
/// file's pre_tokenizer steps in order.
///
/// Regexes run with Unicode-scalar semantics, as Oniguruma does on UTF-8:
/// Swift's default grapheme semantics would glue combining marks, ZWJ emoji
/// and "\r\n" into single characters and split differently from Hugging Face.
struct PreTokenizer: Sendable {
    private let steps: [Step]

    private enum Step: Sendable {
        case split(CompiledRegex, keepsMatches: Bool, keepsGaps: Bool)
        case byteLevel(addPrefixSpace: Bool, regex: CompiledRegex?)
        case digits(individual: Bool)
    }

    /// A regex shared across threads. Swift does not mark `Regex` Sendable,
    /// but it is immutable once its program is built, which `init` forces by
    /// matching once before anything else can see it.
    private struct CompiledRegex: @unchecked Sendable {
        let regex: Regex<AnyRegexOutput>

        init(_ regex: Regex<AnyRegexOutput>) {
            let scalarRegex = regex.matchingSemantics(.unicodeScalar)
            _ = "".firstMatch(of: scalarRegex)
            self.regex = scalarRegex
        }
    }

    /// GPT-2's pattern, used by a ByteLevel step with use_regex.
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// Throws `TokenizerFile.Unsupported` for an unknown split behavior and
    /// `InvalidRegex` for a pattern Swift cannot compile.
    init(_ spec: PreTokenizerSpec?) throws {
        var steps: [Step] = []
        func add(_ spec: PreTokenizerSpec) throws {
            switch spec {
            case .sequence(let inner):
                for step in inner { try add(step) }
            case .split(let split):
                steps.append(try Self.splitStep(split))
            case .byteLevel(let addPrefixSpace, let useRegex):
                steps.append(.byteLevel(addPrefixSpace: addPrefixSpace,
                                        regex: useRegex ? try Self.compile(Self.gpt2Pattern) : nil))
            case .digits(let individual):
                steps.append(.digits(individual: individual))
            }
        }
        if let spec { try add(spec) }
        self.steps = steps
    }

    struct InvalidRegex: Error {
        let pattern: String
        let reason: String
    }

    private static func compile(_ pattern: String) throws -> CompiledRegex {
        do {
            return CompiledRegex(try Regex(pattern))
        } catch {
            throw InvalidRegex(pattern: pattern, reason: "\(error)")
        }
    }

    private static func splitStep(_ split: PreTokenizerSpec.SplitSpec) throws -> Step {
        let regex: CompiledRegex
        if let pattern = split.pattern["Regex"] {
            regex = try compile(pattern)
        } else if let literal = split.pattern["String"] {
            regex = CompiledRegex(Regex(verbatim: literal))
        } else {
            throw TokenizerFile.Unsupported(component: "Split pattern \(split.pattern.keys.sorted())")
        }
        // `invert` swaps which pieces count as matches.
        switch split.behavior {
        case "Isolated": return .split(regex, keepsMatches: true, keepsGaps: true)
        case "Removed": return .split(regex, keepsMatches: split.invert, keepsGaps: !split.invert)
        default: throw TokenizerFile.Unsupported(component: "Split behavior \(split.behavior)")
        }
    }

    func pieces(_ text: String) -> [String] {
        var pieces = [text]
        for step in steps {
            pieces = pieces.flatMap { apply(step, to: $0) }
        }
        return pieces
    }

    private func apply(_ step: Step, to piece: String) -> [String] {
        switch step {
        case .split(let regex, let keepsMatches, let keepsGaps):
            return Self.split(piece, on: regex, keepsMatches: keepsMatches, keepsGaps: keepsGaps)
        case .byteLevel(let addPrefixSpace, let regex):
            let spaced = addPrefixSpace && piece.utf8.first != UInt8(ascii: " ") ? " " + piece : piece
            let parts = regex.map { Self.split(spaced, on: $0, keepsMatches: true, keepsGaps: true) } ?? [spaced]
            return parts.map { ByteLevel.encode($0) }
        case .digits(let individual):
            return Self.splitDigits(piece, individual: individual)
        }
    }

    private static func split(_ text: String, on regex: CompiledRegex,
                              keepsMatches: Bool, keepsGaps: Bool) -> [String] {
        let scalars = text.unicodeScalars
        var pieces: [String] = []
        var gapStart = text.startIndex
        func keep(_ range: Range<String.Index>) {
            if !range.isEmpty { pieces.append(String(Substring(scalars[range]))) }
        }
        for match in text.matches(of: regex.regex) {
            if keepsGaps { keep(gapStart..<match.range.lowerBound) }
            if keepsMatches { keep(match.range) }
            gapStart = match.range.upperBound
        }
        if keepsGaps { keep(gapStart..<text.endIndex) }
        return pieces
    }

    /// Runs of numeric scalars (Rust's `char::is_numeric`), or each one alone.
    private static func splitDigits(_ text: String, individual: Bool) -> [String] {
        var pieces: [String] = []
        var current = String.UnicodeScalarView()
        var currentIsNumeric = false
        for scalar in text.unicodeScalars {
            let numeric = [.decimalNumber, .letterNumber, .otherNumber].contains(scalar.properties.generalCategory)
            if !current.isEmpty && (numeric != currentIsNumeric || (numeric && individual)) {
                pieces.append(String(current))
                current = String.UnicodeScalarView()
            }
            current.append(scalar)
            currentIsNumeric = numeric
        }
        if !current.isEmpty { pieces.append(String(current)) }
        return pieces
    }
}
