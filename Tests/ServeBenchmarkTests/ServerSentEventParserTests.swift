import ServeBenchmark
import Testing

@Suite struct ServerSentEventParserTests {
    let stream = "data: {\"text\":\"héllo\"}\n\n: keep-alive comment\n\ndata: {\"text\":\"!\"}\n\ndata: [DONE]\n\n"
    let expected: [StreamEvent] = [.data("{\"text\":\"héllo\"}"), .data("{\"text\":\"!\"}"), .done]

    @Test func wholeStreamInOneRead() {
        var parser = ServerSentEventParser()
        #expect(parser.feed(Array(stream.utf8)) == expected)
    }

    /// Every split point: mid-line, mid-"\n\n", inside the two-byte "é".
    @Test func everySplitIntoTwoReads() {
        let bytes = Array(stream.utf8)
        for cut in 0...bytes.count {
            var parser = ServerSentEventParser()
            let events = parser.feed(bytes[..<cut]) + parser.feed(bytes[cut...])
            #expect(events == expected, "split at byte \(cut)")
        }
    }

    @Test func oneByteAtATime() {
        var parser = ServerSentEventParser()
        let events = stream.utf8.flatMap { parser.feed([$0]) }
        #expect(events == expected)
    }

    @Test func eventWaitsForItsBlankLine() {
        var parser = ServerSentEventParser()
        #expect(parser.feed(Array("data: {\"a\":1}\n".utf8)).isEmpty)
        #expect(parser.feed(Array("\n".utf8)) == [.data("{\"a\":1}")])
    }

    @Test func crlfFramingAndNoSpaceAfterColon() {
        var parser = ServerSentEventParser()
        #expect(parser.feed(Array("data:{\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n".utf8)) == [.data("{\"a\":1}"), .done])
    }

    @Test func multipleDataLinesJoinWithNewlines() {
        var parser = ServerSentEventParser()
        #expect(parser.feed(Array("event: x\ndata: a\ndata: b\n\n".utf8)) == [.data("a\nb")])
    }
}
