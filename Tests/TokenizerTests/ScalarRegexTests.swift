import Testing
@testable import Tokenizer

/// `ScalarRegex` against Oniguruma as Hugging Face `tokenizers` 0.23.3 runs
/// it: each expectation is what `pre_tokenizers.Split(Regex(pattern),
/// "isolated")` returned for the text (matches and the gaps between them).
@Suite struct ScalarRegexTests {
    private static let cases: [(pattern: String, text: String, pieces: [String])] = [
        (#"\s+$"#, "a  \nb  ", ["a", "  ", "\nb", "  "]),
        (#"\s+$"#, "a  \u{2028}b  ", ["a  \u{2028}b", "  "]),
        (#"^b|c$"#, "b\nb c\nc", ["b", "\n", "b", " ", "c", "\n", "c"]),
        (#"\A.|.\z|\Z"#, "ab\ncd\n", ["a", "b\ncd", "\n"]),
        (#"\d+"#, "12٣٤５6x²", ["12٣٤５6", "x²"]),
        (#"\w+"#, "ab_é١x-y", ["ab_é١x", "-", "y"]),
        (#"\bx\B"#, "x xy yx", ["x ", "x", "y yx"]),
        (#"x*"#, "axxb", ["a", "xx", "b"]),
        (#"(?i:'s|'t)|(?i)LL"#, "'S'T's ll Ll", ["'S", "'T", "'s", " ", "ll", " ", "Ll"]),
        (#"(?i)k"#, "K\u{212A}k", ["K", "\u{212A}", "k"]),
        // Bounds with canonical decompositions, which Swift's Regex refuses.
        (#"[\x{1F5F}-\x{1F7D}]+"#, "\u{1F7D}\u{03CE}\u{1F71}\u{03AC}", ["\u{1F7D}", "\u{03CE}", "\u{1F71}", "\u{03AC}"]),
        ("[\u{212A}-\u{212D}]+", "K\u{212A}\u{212D}k", ["K", "\u{212A}\u{212D}", "k"]),
        ("e\u{301}|[\u{E9}]", "\u{E9}e\u{301}", ["\u{E9}", "e\u{301}"]),
        (#"\s+(?!\S)|\s+"#, "a   b \t\n c  ", ["a", "  ", " ", "b", " \t\n", " ", "c", "  "]),
        (#"[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"#, "\u{301}ab 1cd\tef,gh", ["\u{301}ab", " ", "1cd", "\tef", ",", "gh"]),
        (#"\p{N}{1,3}"#, "1234567 ٣٤٥٦ ½⅓", ["123", "456", "7", " ", "٣٤٥", "٦", " ", "½⅓"]),
        (#"[^\s\p{L}\p{N}]+"#, "a!?\u{A0}#b", ["a", "!?", "\u{A0}", "#", "b"]),
        (#"a{2}|b{,2}c|d{2,}?e|f+?"#, "aaa bbbc ddde ff", ["aa", "a b", "bbc", " ", "ddde", " ", "f", "f"]),
        (#"[a-c[x-z]]+|[^[^m]]"#, "abxyzm", ["abxyz", "m"]),
        (#"[\p{^L}&]+|\P{N}"#, "1&2a", ["1&2", "a"]),
        (#"(?=\d)\w+|(?<name>q)"#, "a1b q", ["a", "1b", " ", "q"]),
        (#"\x41\u0042\t[\x{43}-\x{44}\-]"#, "AB\tD- AB\t-", ["AB\tD", "- ", "AB\t-"]),
        (#"[]a]+|[a-]+"#, "]a-a", ["]a", "-a"]),
        (#"\h+"#, "0fZg", ["0f", "Zg"]),
    ]

    private static func isolated(_ pattern: String, _ text: String) throws -> [String] {
        let regex = try ScalarRegex(pattern)
        let scalars = ScalarText(text.unicodeScalars)
        var pieces: [String] = []
        var gapStart = 0
        for match in regex.matches(in: scalars, 0..<scalars.values.count) {
            if gapStart < match.lowerBound { pieces.append(scalars.string(gapStart..<match.lowerBound)) }
            if !match.isEmpty { pieces.append(scalars.string(match)) }
            gapStart = match.upperBound
        }
        if gapStart < scalars.values.count { pieces.append(scalars.string(gapStart..<scalars.values.count)) }
        return pieces
    }

    @Test func splitsLikeOniguruma() throws {
        for testCase in Self.cases {
            #expect(try Self.isolated(testCase.pattern, testCase.text) == testCase.pieces,
                    "\(testCase.pattern) on \(testCase.text.debugDescription)")
        }
    }

    @Test func matchesOnlyInsideTheGivenRange() throws {
        let text = ScalarText("ab\ncd  ef".unicodeScalars)
        // The range is matched as a string of its own: ^ and $ hold at its ends.
        #expect(try ScalarRegex(#"^\w+$"#).matches(in: text, 3..<5) == [3..<5])
        #expect(try ScalarRegex(#"\s+(?!\S)"#).matches(in: text, 3..<7) == [5..<7])
    }

    @Test(arguments: [
        #"(?<=a)b"#, #"(?>a)"#, #"a++"#, #"\p{Han}"#, #"[[:alpha:]]"#, #"[a&&b]"#, #"(a*)*"#, #"\1"#, #"(?m:.)"#,
    ])
    func refusesSyntaxOutsideItsSubset(pattern: String) {
        #expect(throws: ScalarRegex.Unsupported.self) { try ScalarRegex(pattern) }
    }

    /// Patterns outside the subset still work: the pre-tokenizer falls back to Swift's Regex.
    @Test func preTokenizerFallsBackToSwiftRegex() throws {
        let split = PreTokenizerSpec.split(.init(regex: #"\p{Han}+"#, behavior: "Isolated"))
        #expect(try PreTokenizer(split).pieces("ab中文cd") == ["ab", "中文", "cd"])
    }

    @Test func compilesEveryDeepSeekAndGPT2Pattern() throws {
        guard case .sequence(let steps) = PreTokenizerSpec.deepseekV3 else {
            Issue.record("deepseekV3 is not a sequence")
            return
        }
        for case .split(let split) in steps {
            _ = try ScalarRegex(try #require(split.pattern["Regex"]))
        }
        _ = try ScalarRegex(PreTokenizer.gpt2Pattern)
    }
}
