import ControlPlane
import Sampling
import Testing

/// One message of every kind, with every field away from its default.
let everyKind: [ControlMessage] = [
    .hello(Hello(rank: 3, host: "node-a", role: .expert, experts: [0, 5, 255], residentWeightBytes: 12_345_678_901, pid: 4242,
                 diskBytes: 98_765_432_100, modelDirectory: "/srv/models/shard-ü")),
    .topology(Topology(worldSize: 3, ranks: [
        RankAssignment(rank: 1, role: .attention, host: "node-a"),
        RankAssignment(rank: 0, role: .router, host: "node-a"),
        RankAssignment(rank: 2, role: .expert, experts: [0, 1, 2, 3], host: "node-b"),
    ], modelName: "deepseek-v3-tiny", modelHash: "sha256:abcd", numHiddenLayers: 4, numRoutedExperts: 8)),
    .submitRequest(SubmitRequest(requestId: 1 << 40, promptTokenIds: [0, 1, 128_000, 2_000_000],
                                 sampling: SamplingOptions(temperature: 0.7, topK: 40, topP: 0.95, seed: .max),
                                 maxTokens: 64, stopTokenIds: [1, 2], stopStrings: ["\n\n", "</s>", "ünï"], ignoreEOS: true)),
    .stepPlan(StepPlan(step: 17, work: [
        SequenceWork(sequenceId: 9, attentionRank: 1, phase: .prefill, tokens: [5, 6, 7, 8], startPosition: 0,
                     sample: false, sampling: SamplingOptions(temperature: 1, topK: 0, topP: 1, seed: 3)),
        SequenceWork(sequenceId: 4, attentionRank: 2, phase: .decode, tokens: [99], startPosition: 1_000, logprobs: 3),
        SequenceWork(sequenceId: 5, attentionRank: 2, phase: .decode, tokens: [98], startPosition: 7, logprobs: 0),
    ], finishedSequences: [1, 2, 3])),
    .stepResult(StepResult(step: 17, tokens: [
        SequenceToken(sequenceId: 4, token: 12, logitsRows: 1,
                      logprobs: TokenLogprobs(chosen: TokenLogprob(token: 12, logprob: -0.25),
                                              top: [TokenLogprob(token: 12, logprob: -0.25), TokenLogprob(token: 7, logprob: -2.5)])),
        SequenceToken(sequenceId: 5, token: 3, logprobs: TokenLogprobs(chosen: TokenLogprob(token: 3, logprob: -1), top: [])),
        SequenceToken(sequenceId: 9, token: 0),
    ])),
    .finish(Finish(requestId: 7, reason: .stopString, tokens: [1, 2, 3], text: "héllo\nworld")),
    .stats(RankStats(rank: 2, steps: 100, prefillTokens: 4096, decodeTokens: 100, expertTokens: 800,
                     busySeconds: 1.5, wallSeconds: 2.25, dispatchSeconds: [0.001, 0.002], combineSeconds: [0.003, 0.004],
                     dispatchBytes: [1 << 20, 2 << 20], combineBytes: [3, 4])),
    .errorReport(ErrorReport(rank: 1, code: .peerTimeout, message: "rank 2 did not answer within 30 s")),
    .shutdown(Shutdown(reason: "client asked")),
]

/// The sender rank each sample is valid from (a Hello must come from its own rank).
func sender(of message: ControlMessage) -> Int {
    if case .hello(let h) = message { return h.rank }
    return 3
}

@Suite struct RoundTrip {
    @Test(arguments: everyKind)
    func everyMessageKind(_ message: ControlMessage) throws {
        let rank = sender(of: message)
        let bytes = try message.encode(senderRank: rank)
        #expect(!bytes.isEmpty)
        #expect(try ControlMessage.decode(bytes, from: rank) == message)
    }

    @Test func coversEveryKind() {
        #expect(Set(everyKind.map(\.kind)).count == 9)
    }

    @Test func defaultsRoundTrip() throws {
        let messages: [ControlMessage] = [
            .shutdown(Shutdown(reason: "")),
            .stepPlan(StepPlan(step: 0, work: [])),
            .stepResult(StepResult(step: 0, tokens: [])),
            .stats(RankStats(rank: 0)),
            .finish(Finish(requestId: 0, reason: .length, tokens: [])),
            .submitRequest(SubmitRequest(requestId: 0, promptTokenIds: [0], maxTokens: 1)),
            .hello(Hello(rank: 0, host: "", role: .router, pid: 1)),
        ]
        for m in messages {
            #expect(try ControlMessage.decode(m.encode(senderRank: 0), from: 0) == m)
        }
    }

    @Test func protocolVersionIsOne() {
        #expect(ControlPlane.protocolVersion == 1)
    }

    /// Many encode/decode cycles of the largest sample, so a leak shows in a sanitizer run.
    @Test func repeatedCyclesAreStable() throws {
        let m = everyKind[3]
        let bytes = try m.encode(senderRank: 3)
        for _ in 0..<2_000 {
            #expect(try m.encode(senderRank: 3) == bytes)
            _ = try ControlMessage.decode(bytes, from: 3)
        }
    }
}

// MARK: - hand-built wire bytes, for messages `encode` refuses to produce

/// A minimal protobuf writer: just enough to build bad envelopes.
struct Proto {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ field: UInt64, _ wire: UInt64) { varint(field << 3 | wire) }
    mutating func uint(_ field: UInt64, _ v: UInt64) { tag(field, 0); varint(v) }
    mutating func int(_ field: UInt64, _ v: Int32) { tag(field, 0); varint(UInt64(bitPattern: Int64(v))) }
    mutating func float(_ field: UInt64, _ v: Float) {
        tag(field, 5)
        withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 }
    }
    mutating func message(_ field: UInt64, _ body: Proto) { tag(field, 2); varint(UInt64(body.bytes.count)); bytes += body.bytes }
    mutating func packedInts(_ field: UInt64, _ vs: [Int32]) {
        var p = Proto()
        for v in vs { p.varint(UInt64(bitPattern: Int64(v))) }
        message(field, p)
    }

    static func envelope(version: UInt64 = 1, sender: Int32, body: (field: UInt64, message: Proto)?) -> [UInt8] {
        var e = Proto()
        e.uint(1, version)
        e.int(2, sender)
        if let body { e.message(body.field, body.message) }
        return e.bytes
    }

    static func sampling(topP: Float = 1, temperature: Float = 0) -> Proto {
        var s = Proto()
        s.float(1, temperature)
        s.float(3, topP)
        return s
    }

    static func submit(prompt: [Int32], topP: Float = 1, temperature: Float = 0, maxTokens: UInt64 = 8) -> Proto {
        var r = Proto()
        r.uint(1, 77)
        r.packedInts(2, prompt)
        r.message(3, sampling(topP: topP, temperature: temperature))
        r.uint(4, maxTokens)
        return r
    }
}

func decodeError(_ bytes: [UInt8], from rank: Int) -> ControlPlaneError? {
    do {
        _ = try ControlMessage.decode(bytes, from: rank)
        return nil
    } catch {
        return error
    }
}

@Suite struct Rejection {
    @Test func handBuiltValidEnvelopeDecodes() throws {
        let bytes = Proto.envelope(sender: 3, body: (12, Proto.submit(prompt: [1, 2, 3], topP: 0.5)))
        guard case .submitRequest(let r) = try ControlMessage.decode(bytes, from: 3) else {
            Issue.record("not a submit request")
            return
        }
        #expect(r.requestId == 77 && r.promptTokenIds == [1, 2, 3] && r.sampling.topP == 0.5 && r.maxTokens == 8)
    }

    @Test(arguments: [[UInt8]([0xFF, 0xFF, 0xFF]), [0x0A, 0x05, 0x01], [0x08], []])
    func malformedBytes(_ bytes: [UInt8]) throws {
        let error = try #require(decodeError(bytes, from: 3))
        #expect(error.kind == .malformed)
        #expect(error.rank == 3)
        #expect(error.description.hasPrefix("malformed control message from rank 3: "))
    }

    @Test func wrongProtocolVersion() throws {
        let bytes = Proto.envelope(version: 2, sender: 3, body: (18, Proto()))
        let error = try #require(decodeError(bytes, from: 3))
        #expect(error.kind == .unsupportedVersion)
        #expect(error.description.contains("from rank 3"))
        #expect(error.description.contains("protocol version 2"))
    }

    @Test func missingBody() throws {
        let error = try #require(decodeError(Proto.envelope(sender: 3, body: nil), from: 3))
        #expect(error.kind == .missingBody)
        #expect(error.description == "malformed control message from rank 3: envelope has no body")
    }

    @Test func unknownBody() throws {
        let error = try #require(decodeError(Proto.envelope(sender: 5, body: (99, Proto())), from: 5))
        #expect(error.kind == .missingBody)
        #expect(error.description.contains("from rank 5"))
        #expect(error.description.contains("unknown field 99"))
    }

    @Test func senderMismatch() throws {
        let bytes = try ControlMessage.shutdown(Shutdown(reason: "x")).encode(senderRank: 2)
        let error = try #require(decodeError(bytes, from: 3))
        #expect(error.kind == .senderMismatch)
        #expect(error.description.contains("from rank 3"))
        #expect(error.description.contains("sender rank 2"))
    }

    @Test func helloFromAnotherRank() throws {
        var h = Proto()
        h.int(1, 4)
        h.uint(3, 1)
        h.int(6, 100)
        let error = try #require(decodeError(Proto.envelope(sender: 3, body: (10, h)), from: 3))
        #expect(error.kind == .invalidValue)
        #expect(error.description.contains("from rank 3"))
        #expect(error.description.contains("names rank 4"))
    }

    @Test func unspecifiedRole() throws {
        var h = Proto()
        h.int(1, 3)
        h.int(6, 100)
        let error = try #require(decodeError(Proto.envelope(sender: 3, body: (10, h)), from: 3))
        #expect(error.kind == .invalidValue)
        #expect(error.description.contains("hello.role 0"))
    }

    struct BadSubmit: Sendable, CustomTestStringConvertible {
        let name: String
        let body: Proto
        let mentions: String
        var testDescription: String { name }
    }

    @Test(arguments: [
        BadSubmit(name: "empty prompt", body: Proto.submit(prompt: []), mentions: "empty prompt"),
        BadSubmit(name: "negative token", body: Proto.submit(prompt: [1, -4, 2]), mentions: "token id -4"),
        BadSubmit(name: "top_p above 1", body: Proto.submit(prompt: [1], topP: 1.5), mentions: "top_p 1.5 is outside (0, 1]"),
        BadSubmit(name: "top_p zero", body: Proto.submit(prompt: [1], topP: 0), mentions: "top_p 0.0 is outside (0, 1]"),
        BadSubmit(name: "top_p NaN", body: Proto.submit(prompt: [1], topP: .nan), mentions: "top_p nan"),
        BadSubmit(name: "negative temperature", body: Proto.submit(prompt: [1], temperature: -1), mentions: "temperature -1.0"),
        BadSubmit(name: "zero max tokens", body: Proto.submit(prompt: [1], maxTokens: 0), mentions: "max_tokens 0"),
    ])
    func invalidSubmitRequest(_ bad: BadSubmit) throws {
        let error = try #require(decodeError(Proto.envelope(sender: 6, body: (12, bad.body)), from: 6))
        #expect(error.kind == .invalidValue)
        #expect(error.description.hasPrefix("malformed control message from rank 6: submit_request: request 77"))
        #expect(error.description.contains(bad.mentions), "\(error)")
    }

    @Test func submitWithoutSampling() throws {
        var r = Proto()
        r.uint(1, 77)
        r.packedInts(2, [1])
        r.uint(4, 8)
        let error = try #require(decodeError(Proto.envelope(sender: 6, body: (12, r)), from: 6))
        #expect(error.description.contains("sampling is missing"))
    }

    @Test func decodeWorkWithTwoTokens() throws {
        var w = Proto()
        w.uint(1, 9)
        w.int(2, 1)
        w.uint(3, 2)  // DECODE
        w.packedInts(4, [5, 6])
        var plan = Proto()
        plan.uint(1, 3)
        plan.message(2, w)
        let error = try #require(decodeError(Proto.envelope(sender: 0, body: (13, plan)), from: 0))
        #expect(error.kind == .invalidValue)
        #expect(error.description.contains("from rank 0"))
        #expect(error.description.contains("sequence 9) is a decode step with 2 tokens"))
    }

    @Test func negativeSampledToken() throws {
        var t = Proto()
        t.uint(1, 9)
        t.int(2, -1)
        var result = Proto()
        result.uint(1, 3)
        result.message(2, t)
        let error = try #require(decodeError(Proto.envelope(sender: 1, body: (14, result)), from: 1))
        #expect(error.kind == .invalidValue)
        #expect(error.description.contains("from rank 1"))
    }

    @Test func encodeRefusesWhatDecodeWouldReject() throws {
        let bad: [(ControlMessage, String)] = [
            (.submitRequest(SubmitRequest(requestId: 1, promptTokenIds: [], maxTokens: 4)), "empty prompt"),
            (.submitRequest(SubmitRequest(requestId: 1, promptTokenIds: [1], sampling: SamplingOptions(topP: 2), maxTokens: 4)), "top_p"),
            (.submitRequest(SubmitRequest(requestId: 1, promptTokenIds: [1 << 40], maxTokens: 4)), "does not fit in int32"),
            (.hello(Hello(rank: 2, host: "h", role: .expert, pid: 1)), "names rank 2"),
            (.topology(Topology(worldSize: 2, ranks: [RankAssignment(rank: 0, role: .router)], modelName: "m", modelHash: "h")), "world_size is 2"),
            (.stats(RankStats(rank: 0, dispatchSeconds: [1], combineSeconds: [1, 2])), "differ in length"),
        ]
        for (message, mentions) in bad {
            #expect {
                _ = try message.encode(senderRank: 3)
            } throws: { error in
                guard let e = error as? ControlPlaneError else { return false }
                return e.kind == .unencodable && e.description.hasPrefix("cannot send control message from rank 3") && e.description.contains(mentions)
            }
        }
    }
}
