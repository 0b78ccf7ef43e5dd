import ExpertLoad
import Foundation
import Testing

@Suite struct ExpertLoadRecordTests {
    static func record(layers: [ExpertLoadRecord.Layer] = [.init(layer: 2, tokensPerExpert: [3, 0, 1, 4]),
                                                           .init(layer: 1, tokensPerExpert: [1, 1, 2, 4])]) -> ExpertLoadRecord {
        ExpertLoadRecord(modelFingerprint: "abc123", model: "/models/x", routedExperts: 4, expertsPerToken: 2, groups: 2, groupsPerToken: 1,
                         window: .init(start: Date(timeIntervalSince1970: 1_700_000_000.25), end: Date(timeIntervalSince1970: 1_700_000_060.5),
                                       steps: 3, tokens: 4),
                         layers: layers)
    }

    static func file(_ text: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("expert-load-\(getpid())-\(UUID().uuidString).json")
        try Data(text.utf8).write(to: url)
        return url
    }

    /// Written JSON reads back equal; layers come out ascending and times as ISO 8601 UTC.
    @Test func roundTrip() throws {
        let original = Self.record()
        #expect(original.layers.map(\.layer) == [1, 2])
        let text = String(decoding: try original.jsonData(), as: UTF8.self)
        #expect(text.contains("\"start\": \"2023-11-14T22:13:20.250Z\""), "\(text)")
        #expect(text.contains("\"model_fingerprint\": \"abc123\""))
        #expect(text.contains("{\"layer\": 1, \"tokens_per_expert\": [1, 1, 2, 4]},\n"), "one line per layer: \(text)")
        let url = try Self.file(text)
        defer { try? FileManager.default.removeItem(at: url) }
        let back = try ExpertLoadRecord.read(url)
        #expect(back == original)
        #expect(back.tokensPerExpert(layer: 2) == [3, 0, 1, 4] && back.tokensPerExpert(layer: 3) == nil)
    }

    /// Times without fractional seconds (written by hand) are accepted.
    @Test func plainTimes() throws {
        var text = String(decoding: try Self.record().jsonData(), as: UTF8.self)
        text = text.replacingOccurrences(of: "2023-11-14T22:13:20.250Z", with: "2023-11-14T22:13:20Z")
        let record = try ExpertLoadRecord.decode(Data(text.utf8), source: "hand.json")
        #expect(record.window.start == Date(timeIntervalSince1970: 1_700_000_000))
    }

    /// Each problem is one line naming the file and what is wrong.
    @Test func errorsNameFileAndProblem() throws {
        func problem(_ edit: (inout ExpertLoadRecord) -> Void) throws -> String {
            var r = Self.record()
            edit(&r)
            let data = try r.jsonData()
            do {
                _ = try ExpertLoadRecord.decode(data, source: "load.json")
                Issue.record("expected an error")
                return ""
            } catch {
                #expect(!error.description.contains("\n"))
                #expect(error.description.hasPrefix("expert-load file load.json "))
                return error.description
            }
        }
        #expect(try problem { $0.layers[1].tokensPerExpert = [1, 2, 3] }.contains("layer 2 has 3 counts; n_routed_experts is 4"))
        #expect(try problem { $0.layers[0].tokensPerExpert[3] = -1 }.contains("layer 1 expert 3 has a negative count (-1)"))
        #expect(try problem { $0.layers[1].layer = 1 }.contains("records layer 1 twice"))
        #expect(try problem { $0.layers = [] }.contains("records no MoE layer"))
        #expect(try problem { $0.format = "other/2" }.contains("format \"other/2\""))
        #expect(try problem { $0.groups = 3 }.contains("n_group 3"))
        do {
            _ = try ExpertLoadRecord.decode(Data(#"{"format": "conclave-expert-load/1"}"#.utf8), source: "short.json")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("short.json") && error.description.contains("is missing"), "\(error)")
        }
        do {
            _ = try ExpertLoadRecord.read(URL(fileURLWithPath: "/nonexistent/load.json"))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("/nonexistent/load.json cannot be read"), "\(error)")
        }
    }
}

@Suite struct BalancednessTests {
    @Test func meanOverMax() {
        // 4 ranks with rows 10, 20, 30, 40: mean 25, max 40.
        #expect(Balancedness.of([10, 20, 30, 40]) == 0.625)
        #expect(Balancedness.of([7, 7, 7]) == 1)
        // One of four ranks takes everything: 1/4.
        #expect(Balancedness.of([0, 0, 12, 0]) == 0.25)
        #expect(Balancedness.of([1.5, 0.5]) == 2.0 / 3)
    }

    @Test func nothingToBalanceIsEven() {
        #expect(Balancedness.of([Int]()) == 1)
        #expect(Balancedness.of([0, 0, 0]) == 1)
    }
}
