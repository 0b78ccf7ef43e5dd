import Foundation
import Testing
@testable import Tokenizer

/// Parity with Hugging Face `tokenizers` on DeepSeek's real tokenizer.json
/// files. The files (several MB) are not in the repository: tools/fetch-tokenizers
/// puts them in .cache/deepseek-tokenizers/{v3,v2}/, and tools/test runs it.
/// The cases, Tests/Fixtures/tokenizer/deepseek-{v3,v2}-cases.json, are written
/// by tools/fixtures/real_tokenizer_cases.py and name the sha256 of the file
/// they were computed from.
private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // Tests/TokenizerTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()

private struct RealCases: Decodable {
    let tokenizerSHA256: String
    let vocabSize: Int
    let cases: [Case]

    struct Case: Decodable {
        let text: String
        let ids: [Int]
    }

    enum CodingKeys: String, CodingKey {
        case cases
        case tokenizerSHA256 = "tokenizer_sha256"
        case vocabSize = "vocab_size"
    }
}

/// A DeepSeek version's tokenizer and its cases, loaded once per test run.
private struct RealTokenizer {
    let tokenizer: Tokenizer
    let cases: [RealCases.Case]
    let vocabSize: Int

    struct Missing: Error, CustomStringConvertible {
        let description: String
    }

    init(version: String) throws {
        let directory = repositoryRoot.appendingPathComponent(".cache/deepseek-tokenizers/\(version)")
        let file = directory.appendingPathComponent("tokenizer.json")
        let casesFile = repositoryRoot.appendingPathComponent("Tests/Fixtures/tokenizer/deepseek-\(version)-cases.json")
        let fixture = try JSONDecoder().decode(RealCases.self, from: Data(contentsOf: casesFile))
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw Missing(description: "\(file.path) is missing: run tools/fetch-tokenizers")
        }
        let digest = SHA256.hex(data)
        guard digest == fixture.tokenizerSHA256 else {
            throw Missing(description: "\(file.path) has sha256 \(digest) but \(casesFile.lastPathComponent) was made "
                + "from \(fixture.tokenizerSHA256): run tools/fetch-tokenizers")
        }
        tokenizer = try Tokenizer(directory: directory)
        cases = fixture.cases
        vocabSize = fixture.vocabSize
    }
}

private let v3 = Result { try RealTokenizer(version: "v3") }
private let v2 = Result { try RealTokenizer(version: "v2") }

private func loaded(_ version: String) throws -> RealTokenizer {
    try (version == "v3" ? v3 : v2).get()
}

@Suite struct RealTokenizerTests {
    @Test(arguments: ["v3", "v2"])
    func encodesEveryCaseLikeHuggingFace(version: String) throws {
        let real = try loaded(version)
        #expect(real.cases.count >= 60)
        for testCase in real.cases {
            let ids = real.tokenizer.encode(testCase.text, addBOS: false)
            #expect(ids == testCase.ids, "\(version): \(testCase.text.debugDescription)")
        }
    }

    @Test(arguments: ["v3", "v2"])
    func decodesEveryCaseBackInFullAndStreamed(version: String) throws {
        let real = try loaded(version)
        for testCase in real.cases {
            let text = try real.tokenizer.decode(testCase.ids, skipSpecial: false)
            #expect(text == testCase.text, "\(version): \(testCase.text.debugDescription)")
            var decoder = StreamingDecoder(tokenizer: real.tokenizer, skipSpecial: false)
            var streamed = ""
            for id in testCase.ids { streamed += try decoder.append(id) }
            streamed += decoder.finish()
            #expect(streamed == text, "\(version) streamed: \(testCase.text.debugDescription)")
        }
    }

    /// The fast path: no Split pattern of the real files falls back to Swift's Regex.
    @Test(arguments: ["v3", "v2"])
    func compilesEverySplitPatternOnScalarRegex(version: String) throws {
        _ = try loaded(version)
        let url = repositoryRoot.appendingPathComponent(".cache/deepseek-tokenizers/\(version)/tokenizer.json")
        let file = try JSONDecoder().decode(TokenizerFile.self, from: Data(contentsOf: url))
        var patterns: [String] = []
        func collect(_ spec: PreTokenizerSpec) {
            switch spec {
            case .sequence(let steps): steps.forEach(collect)
            case .split(let split): patterns += split.pattern["Regex"].map { [$0] } ?? []
            case .byteLevel, .digits: break
            }
        }
        collect(try #require(file.preTokenizer))
        #expect(patterns.count == (version == "v3" ? 3 : 5))
        for pattern in patterns {
            #expect(throws: Never.self, "\(pattern)") { try ScalarRegex(pattern) }
        }
    }

    @Test func readsSpecialTokensAndSizes() throws {
        let v3 = try loaded("v3"), v2 = try loaded("v2")
        #expect(v3.tokenizer.vocabSize == v3.vocabSize)
        #expect(v2.tokenizer.vocabSize == v2.vocabSize)
        #expect((v3.tokenizer.bosId, v3.tokenizer.eosId) == (0, 1))
        #expect((v2.tokenizer.bosId, v2.tokenizer.eosId) == (100_000, 100_001))
        #expect(v3.tokenizer.id(of: "<｜User｜>") == 128_803)
        #expect(v3.tokenizer.id(of: "<｜Assistant｜>") == 128_804)
    }
}

/// FIPS 180-4 SHA-256, enough to check which tokenizer.json is on disk.
private enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func hex(_ data: Data) -> String {
        var message = [UInt8](data)
        let bitLength = UInt64(message.count) * 8
        message.append(0x80)
        while message.count % 64 != 56 { message.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { message.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }

        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var w = [UInt32](repeating: 0, count: 64)
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
        message.withUnsafeBufferPointer { bytes in
            for block in stride(from: 0, to: bytes.count, by: 64) {
                for i in 0..<16 {
                    let j = block + 4 * i
                    w[i] = UInt32(bytes[j]) << 24 | UInt32(bytes[j + 1]) << 16 | UInt32(bytes[j + 2]) << 8 | UInt32(bytes[j + 3])
                }
                for i in 16..<64 {
                    let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                    let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                    w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                }
                var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
                for i in 0..<64 {
                    let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ (e & f ^ ~e & g) &+ k[i] &+ w[i]
                    let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ (a & b ^ a & c ^ b & c)
                    (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
                }
                for (i, value) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ value }
            }
        }
        return h.map { String($0, radix: 16).leftPadded(to: 8) }.joined()
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
