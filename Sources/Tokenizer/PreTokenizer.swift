/// Splits text into the pieces BPE encodes independently, following the
/// file's pre_tokenizer steps in order.
///
/// Works on Unicode scalars, as Hugging Face does on UTF-8: Swift's default
/// grapheme semantics would glue combining marks, ZWJ emoji and "\r\n" into
/// single characters and split differently. The text is held once as an
/// array of scalars (with their general categories) and each step refines a
/// list of ranges into it; only the final pieces become strings.
struct PreTokenizer: Sendable {
    private let steps: [Step]

    private enum Step: Sendable {
        case split(SplitRegex, keepsMatches: Bool, keepsGaps: Bool)
        case byteLevel(addPrefixSpace: Bool, regex: SplitRegex?)
        case digits(individual: Bool)
    }

    /// A pattern on `ScalarRegex` when its syntax allows (every DeepSeek and
    /// GPT-2 style pattern), else on Swift's `Regex`.
    private enum SplitRegex: Sendable {
        case scalar(ScalarRegex)
        case swift(CompiledRegex)

        func matches(in text: ScalarText, _ range: Range<Int>) -> [Range<Int>] {
            switch self {
            case .scalar(let regex):
                return regex.matches(in: text, range)
            case .swift(let regex):
                // Swift reports String indices: convert them to scalar offsets.
                let string = text.string(range)
                let scalars = string.unicodeScalars
                var index = scalars.startIndex
                var offset = range.lowerBound
                func offsetOf(_ bound: String.Index) -> Int {
                    offset += scalars.distance(from: index, to: bound)
                    index = bound
                    return offset
                }
                return string.matches(of: regex.regex).map { match in
                    let lower = offsetOf(match.range.lowerBound)
                    return lower..<offsetOf(match.range.upperBound)
                }
            }
        }
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
    /// `InvalidRegex` for a pattern neither `ScalarRegex` nor Swift's `Regex`
    /// compiles.
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

    private static func compile(_ pattern: String) throws -> SplitRegex {
        if let regex = try? ScalarRegex(pattern) { return .scalar(regex) }
        do {
            return .swift(CompiledRegex(try Regex(pattern)))
        } catch {
            throw InvalidRegex(pattern: pattern, reason: "\(error)")
        }
    }

    private static func splitStep(_ split: PreTokenizerSpec.SplitSpec) throws -> Step {
        let regex: SplitRegex
        if let pattern = split.pattern["Regex"] {
            regex = try compile(pattern)
        } else if let literal = split.pattern["String"] {
            regex = .swift(CompiledRegex(Regex(verbatim: literal)))
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
        var text = ScalarText(text.unicodeScalars)
        var ranges = text.values.isEmpty ? [] : [0..<text.values.count]
        for (index, step) in steps.enumerated() {
            // Text rebuilt by the last step is only read, not matched.
            let categorized = index < steps.count - 1
            switch step {
            case .split(let regex, let keepsMatches, let keepsGaps):
                ranges = ranges.flatMap { range in
                    Self.split(range, at: regex.matches(in: text, range), keepsMatches: keepsMatches, keepsGaps: keepsGaps)
                }
            case .byteLevel(let addPrefixSpace, let regex):
                if addPrefixSpace { (text, ranges) = Self.prefixingSpace(text, ranges, categorized: regex != nil) }
                if let regex {
                    ranges = ranges.flatMap { Self.split($0, at: regex.matches(in: text, $0), keepsMatches: true, keepsGaps: true) }
                }
                (text, ranges) = Self.byteLevel(text, ranges, categorized: categorized)
            case .digits(let individual):
                ranges = ranges.flatMap { Self.splitDigits($0, in: text, individual: individual) }
            }
        }
        return ranges.map { text.string($0) }
    }

    /// The non-empty matches and/or gaps of `range`, in order.
    private static func split(_ range: Range<Int>, at matches: [Range<Int>],
                              keepsMatches: Bool, keepsGaps: Bool) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var gapStart = range.lowerBound
        for match in matches {
            if keepsGaps && gapStart < match.lowerBound { pieces.append(gapStart..<match.lowerBound) }
            if keepsMatches && !match.isEmpty { pieces.append(match) }
            gapStart = match.upperBound
        }
        if keepsGaps && gapStart < range.upperBound { pieces.append(gapStart..<range.upperBound) }
        return pieces
    }

    /// Each piece not starting with " " gets one, as Hugging Face's ByteLevel does.
    private static func prefixingSpace(_ text: ScalarText, _ ranges: [Range<Int>],
                                       categorized: Bool) -> (ScalarText, [Range<Int>]) {
        var values: [UInt32] = []
        values.reserveCapacity(text.values.count + ranges.count)
        var spaced: [Range<Int>] = []
        for range in ranges {
            let start = values.count
            if text.values[range.lowerBound] != 0x20 { values.append(0x20) }
            values += text.values[range]
            spaced.append(start..<values.count)
        }
        return (ScalarText(values: values, categorized: categorized), spaced)
    }

    /// Each piece's UTF-8 bytes, written as their printable scalars.
    private static func byteLevel(_ text: ScalarText, _ ranges: [Range<Int>],
                                  categorized: Bool) -> (ScalarText, [Range<Int>]) {
        var values: [UInt32] = []
        values.reserveCapacity(text.values.count * 2)
        var mapped: [Range<Int>] = []
        for range in ranges {
            let start = values.count
            for value in text.values[range] {
                UTF8.encode(Unicode.Scalar(value)!) { values.append(ByteLevel.scalarOfByte[Int($0)].value) }
            }
            mapped.append(start..<values.count)
        }
        return (ScalarText(values: values, categorized: categorized), mapped)
    }

    /// Runs of numeric scalars (Rust's `char::is_numeric`), or each one alone.
    private static func splitDigits(_ range: Range<Int>, in text: ScalarText, individual: Bool) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var start = range.lowerBound
        for position in range where position > range.lowerBound {
            let numeric = GeneralCategory.isNumeric(text.categories[position])
            let previousNumeric = GeneralCategory.isNumeric(text.categories[position - 1])
            if numeric != previousNumeric || (numeric && individual) {
                pieces.append(start..<position)
                start = position
            }
        }
        if start < range.upperBound { pieces.append(start..<range.upperBound) }
        return pieces
    }
}
