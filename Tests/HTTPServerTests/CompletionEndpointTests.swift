import Foundation
import Testing

/// `/v1/completions`, `/v1/chat/completions` and `/v1/models` of one server on the tiny model,
/// as a client sees them over HTTP: whole answers against streamed ones, usage, finish
/// reasons, stop strings, token-id prompts, echo and log-probabilities. Requests are greedy
/// (`temperature: 0`), so an answer can be compared with the same request's other form.
@Suite(.serialized, .sharedServer(["--served-model-name", "conclave-tiny"]), .timeLimit(.minutes(2)))
struct CompletionEndpoints {
    static let prompt = "The quick brown fox jumps over"

    /// Fields of a greedy request that generates exactly `maxTokens` tokens.
    static func greedy(maxTokens: Int, _ extra: [String: Any] = [:]) -> [String: Any] {
        extra.merging(["temperature": 0, "max_tokens": maxTokens, "ignore_eos": true]) { own, _ in own }
    }

    @Test func modelListNamesTheServedModel() async throws {
        let api = try SharedServer.connection
        let reply = try await api.get("/v1/models")
        #expect(reply.status == 200, "\(reply)")
        let json = try #require(reply.json, "\(reply)")
        #expect(json["object"]?.string == "list")
        let models = try #require(json["data"]?.array, "\(reply)")
        #expect(models.count == 1, "\(reply)")
        #expect(models.first?["id"]?.string == "conclave-tiny", "\(reply)")
        #expect(models.first?["object"]?.string == "model", "\(reply)")
    }

    /// The whole answer and the streamed one carry the same text and usage; the stream ends
    /// with the finish reason, a usage chunk without choices, and `[DONE]`.
    @Test(arguments: Endpoint.allCases)
    func streamedAnswerEqualsTheWholeAnswer(endpoint: Endpoint) async throws {
        let api = try SharedServer.connection
        let maxTokens = 24
        let fields = api.request(endpoint, prompt: Self.prompt, Self.greedy(maxTokens: maxTokens))

        let whole = try await api.post(endpoint, fields)
        try #require(whole.status == 200, "\(whole)")
        let json = try #require(whole.json, "\(whole)")
        #expect(json["object"]?.string == (endpoint == .chat ? "chat.completion" : "text_completion"))
        #expect(json["model"]?.string == api.model)
        let choice = try #require(json["choices"]?[0], "\(whole)")
        let text = try #require(endpoint.text(of: choice), "\(whole)")
        #expect(!text.isEmpty)
        #expect(choice["finish_reason"]?.string == "length", "\(whole)")
        let usage = try #require(json["usage"], "\(whole)")
        let promptTokens = try #require(usage["prompt_tokens"]?.int)
        #expect(usage["completion_tokens"]?.int == maxTokens, "ignore_eos: every requested token is generated\n\(whole)")
        #expect(usage["total_tokens"]?.int == promptTokens + maxTokens, "\(whole)")
        if endpoint == .completions {
            let ids = try api.tokenize(Self.prompt)
            #expect(promptTokens == ids.count, "prompt_tokens is not the prompt's length with BOS")
        } else {
            let ids = try api.tokenize(Self.prompt, addBOS: false)
            #expect(promptTokens > ids.count, "prompt_tokens does not count the chat template's tokens")
        }

        let streamed = try await api.stream(endpoint, fields.merging(["stream": true, "stream_options": ["include_usage": true]]) { $1 })
        try #require(streamed.status == 200, "\(streamed)")
        #expect(streamed.headers["content-type"]?.hasPrefix("text/event-stream") == true, "\(streamed.headers)")
        #expect(streamed.endsWithDoneOnce, "\(streamed)")
        #expect(streamed.text == text, "greedy streamed text differs from the whole answer")
        #expect(streamed.finishReasons == ["length"], "\(streamed)")
        #expect(streamed.finalUsage == usage, "the final usage chunk differs from the whole answer's usage\n\(streamed)")
        let chunks = streamed.chunks.compactMap { $0 }
        #expect(chunks.count == streamed.events.count - 1, "an event is not JSON\n\(streamed)")
        #expect(Set(chunks.compactMap { $0["id"]?.string }).count == 1, "chunks of one answer carry different ids")
        #expect(chunks.allSatisfy { $0["object"]?.string == (endpoint == .chat ? "chat.completion.chunk" : "text_completion") })
        // With include_usage every chunk but the last says "usage": null.
        #expect(chunks.dropLast().allSatisfy { $0["usage"] == .null }, "\(streamed)")
        if endpoint == .chat {
            #expect(chunks.first?["choices"]?[0]?["delta"]?["role"]?.string == "assistant", "\(streamed)")
        }
    }

    /// Without `stream_options.include_usage` no chunk has a `usage` key nor lacks choices.
    @Test(arguments: Endpoint.allCases)
    func streamWithoutIncludeUsageHasNoUsage(endpoint: Endpoint) async throws {
        let api = try SharedServer.connection
        let streamed = try await api.stream(endpoint, api.request(endpoint, prompt: Self.prompt, Self.greedy(maxTokens: 5, ["stream": true])))
        try #require(streamed.status == 200, "\(streamed)")
        #expect(streamed.endsWithDoneOnce, "\(streamed)")
        let chunks = streamed.chunks.compactMap { $0 }
        #expect(chunks.allSatisfy { $0["usage"] == nil }, "\(streamed)")
        #expect(chunks.allSatisfy { $0["choices"]?.array?.count == 1 }, "\(streamed)")
        #expect(streamed.finishReasons == ["length"], "\(streamed)")
    }

    /// A stop string taken from a previous greedy answer ends the same request's answer just
    /// before the string's first occurrence, with finish reason "stop", whole and streamed.
    @Test(arguments: Endpoint.allCases)
    func stopStringEndsTheAnswerBeforeIt(endpoint: Endpoint) async throws {
        let api = try SharedServer.connection
        let maxTokens = 32
        let fields = api.request(endpoint, prompt: Self.prompt, Self.greedy(maxTokens: maxTokens))
        let reference = try await api.post(endpoint, fields)
        let referenceText = try #require(reference.json?["choices"]?[0].flatMap(endpoint.text(of:)), "\(reference)")
        let (stop, offset) = try #require(Self.stopString(in: referenceText),
                                          "no three ASCII letters after the first five characters of \(referenceText.debugDescription)")
        let expected = String(referenceText.unicodeScalars.prefix(offset))

        let stopped = try await api.post(endpoint, fields.merging(["stop": [stop]]) { $1 })
        try #require(stopped.status == 200, "\(stopped)")
        let choice = try #require(stopped.json?["choices"]?[0], "\(stopped)")
        #expect(endpoint.text(of: choice) == expected, "stop \(stop.debugDescription) in \(referenceText.debugDescription)")
        #expect(choice["finish_reason"]?.string == "stop", "\(stopped)")
        let generated = try #require(stopped.json?["usage"]?["completion_tokens"]?.int)
        #expect(generated < maxTokens, "\(stopped)")

        let streamed = try await api.stream(endpoint, fields.merging(["stop": stop, "stream": true]) { $1 })
        #expect(streamed.text == expected, "streamed, stop \(stop.debugDescription)\n\(streamed)")
        #expect(streamed.finishReasons == ["stop"], "\(streamed)")
        #expect(streamed.endsWithDoneOnce, "\(streamed)")
    }

    /// Three ASCII letters of `text` at or after its sixth Unicode scalar, and the scalar offset
    /// of their first occurrence.
    static func stopString(in text: String) -> (String, Int)? {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count >= 8 else { return nil }
        for start in 5...(scalars.count - 3) {
            let window = scalars[start..<(start + 3)]
            guard window.allSatisfy({ $0.isASCII && $0.properties.isAlphabetic }) else { continue }
            let stop = String(String.UnicodeScalarView(window))
            let first = text.unicodeScalars.firstRange(of: stop.unicodeScalars)!.lowerBound
            return (stop, text.unicodeScalars.distance(from: text.unicodeScalars.startIndex, to: first))
        }
        return nil
    }

    /// A prompt sent as token ids (the text's own tokenization, BOS included) gets the text's answer.
    @Test func tokenIdPromptAnswersLikeItsText() async throws {
        let api = try SharedServer.connection
        let ids = try api.tokenize(Self.prompt)
        let fields = Self.greedy(maxTokens: 16, ["model": api.model])
        let byText = try await api.post(.completions, fields.merging(["prompt": Self.prompt]) { $1 })
        let byIds = try await api.post(.completions, fields.merging(["prompt": ids]) { $1 })
        try #require(byText.status == 200 && byIds.status == 200, "\(byText)\n\(byIds)")
        #expect(byIds.json?["usage"]?["prompt_tokens"]?.int == ids.count, "\(byIds)")
        #expect(byIds.json?["choices"]?[0]?["text"] == byText.json?["choices"]?[0]?["text"], "\(byText)\n\(byIds)")
        // One prompt in an array is accepted too.
        let nested = try await api.post(.completions, fields.merging(["prompt": [ids]]) { $1 })
        #expect(nested.json?["choices"]?[0]?["text"] == byText.json?["choices"]?[0]?["text"], "\(nested)")
    }

    /// `echo`: the answer's text starts with the prompt, followed by the completion.
    @Test func echoPrefixesThePrompt() async throws {
        let api = try SharedServer.connection
        let fields = api.request(.completions, prompt: Self.prompt, Self.greedy(maxTokens: 8))
        let plain = try await api.post(.completions, fields)
        let echoed = try await api.post(.completions, fields.merging(["echo": true]) { $1 })
        let completion = try #require(plain.json?["choices"]?[0]?["text"]?.string, "\(plain)")
        #expect(echoed.json?["choices"]?[0]?["text"]?.string == Self.prompt + completion, "\(echoed)")
        #expect(echoed.json?["usage"] == plain.json?["usage"], "echo changes the token counts")
    }

    /// Chat log-probabilities: one entry per generated token, each with its bytes and
    /// `top_logprobs` alternatives, most likely first; greedy picks the first alternative.
    /// The stream carries the same entries, spread over its chunks.
    @Test func chatLogprobsHaveOneEntryPerTokenWithItsAlternatives() async throws {
        let api = try SharedServer.connection
        let maxTokens = 6, top = 3
        let fields = api.request(.chat, prompt: Self.prompt, Self.greedy(maxTokens: maxTokens, ["logprobs": true, "top_logprobs": top]))
        let reply = try await api.post(.chat, fields)
        try #require(reply.status == 200, "\(reply)")
        let choice = try #require(reply.json?["choices"]?[0], "\(reply)")
        let entries = try #require(choice["logprobs"]?["content"]?.array, "\(reply)")
        #expect(entries.count == maxTokens, "\(reply)")
        var bytes: [UInt8] = []
        for entry in entries {
            let token = try #require(entry["token"]?.string, "\(entry)")
            let logprob = try #require(entry["logprob"]?.double, "\(entry)")
            let tokenBytes = try #require(entry["bytes"]?.ints, "\(entry)")
            #expect(logprob <= 0, "\(entry)")
            #expect(tokenBytes.allSatisfy { (0...255).contains($0) } && !tokenBytes.isEmpty, "\(entry)")
            bytes += tokenBytes.map(UInt8.init)
            let alternatives = try #require(entry["top_logprobs"]?.array, "\(entry)")
            #expect(alternatives.count == top, "\(entry)")
            let values = alternatives.compactMap { $0["logprob"]?.double }
            #expect(values.count == top && values == values.sorted(by: >), "alternatives not most likely first: \(entry)")
            #expect(alternatives.first?["token"]?.string == token && values.first == logprob, "greedy did not pick the likeliest: \(entry)")
        }
        #expect(String(decoding: bytes, as: UTF8.self) == Endpoint.chat.text(of: choice), "the tokens' bytes do not spell the message")

        let streamed = try await api.stream(.chat, fields.merging(["stream": true]) { $1 })
        let streamedEntries = streamed.chunks.compactMap { $0?["choices"]?[0]?["logprobs"]?["content"]?.array }.flatMap { $0 }
        #expect(streamedEntries == entries, "streamed log-probabilities differ from the whole answer's\n\(streamed)")
    }

    /// Completion log-probabilities in the legacy format: parallel arrays, one entry per token.
    @Test func completionLogprobsAreParallelArrays() async throws {
        let api = try SharedServer.connection
        let maxTokens = 6
        let reply = try await api.post(.completions, api.request(.completions, prompt: Self.prompt, Self.greedy(maxTokens: maxTokens, ["logprobs": 2])))
        try #require(reply.status == 200, "\(reply)")
        let logprobs = try #require(reply.json?["choices"]?[0]?["logprobs"], "\(reply)")
        let tokens = try #require(logprobs["tokens"]?.strings, "\(reply)")
        let values = try #require(logprobs["token_logprobs"]?.doubles, "\(reply)")
        let tops = try #require(logprobs["top_logprobs"]?.objects, "\(reply)")
        let offsets = try #require(logprobs["text_offset"]?.ints, "\(reply)")
        #expect([tokens.count, values.count, tops.count, offsets.count] == Array(repeating: maxTokens, count: 4), "\(reply)")
        #expect(values.allSatisfy { $0 <= 0 })
        #expect(tops.allSatisfy { (1...2).contains($0.count) }, "\(reply)")
        #expect(offsets.first == 0 && offsets == offsets.sorted(), "\(reply)")
    }
}
