import Engine
import Foundation
import Hummingbird
import Logging
import OpenAIAPI
import Sampling
import Serving
import Tokenizer

/// Turns validated OpenAI requests into engine requests and engine updates into OpenAI
/// responses, whole or streamed as server-sent events. The engine never sees HTTP.
struct CompletionHandler: Sendable {
    enum Endpoint: String, Sendable {
        case completions = "/v1/completions"
        case chat = "/v1/chat/completions"
    }

    let engine: ServingEngine
    let model: ServedModel
    let maxBodyBytes: Int
    let logger: Logger

    func handle(_ request: Request, endpoint: Endpoint) async throws -> Response {
        let started = DispatchTime.now().uptimeNanoseconds
        let requestId = endpoint == .chat ? ChatCompletionResponse.makeID() : CompletionResponse.makeID()
        var log = AccessLog(id: requestId, path: endpoint.rawValue, started: started, logger: logger)
        do {
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBodyBytes)
            } catch let error as HTTPResponseError where error.status == .contentTooLarge {
                throw APIError.payloadTooLarge(limit: maxBodyBytes)
            }
            let validated = endpoint == .chat
                ? try ValidatedRequest.chatCompletion(from: Data(buffer: body))
                : try ValidatedRequest.completion(from: Data(buffer: body))
            guard validated.model == model.name else { throw APIError.modelNotFound(validated.model) }
            let prompt = try promptIds(validated.prompt, endpoint: endpoint)
            let generation = try generationRequest(validated, prompt: prompt, endpoint: endpoint)
            let submitted: (id: UInt64, updates: AsyncThrowingStream<ServedUpdate, Error>)
            do {
                submitted = try engine.submit(generation)
            } catch {
                throw APIError(submission: error)
            }
            log.promptTokens = prompt.count
            let reply = Reply(id: requestId, created: Int(Date().timeIntervalSince1970), model: model.name, endpoint: endpoint,
                              request: validated, tokenizer: model.tokenizer,
                              echo: validated.echo ? echoText(validated.prompt, ids: prompt) : nil)
            if validated.stream {
                return streamed(reply, submitted: submitted, log: log)
            }
            let response = try await whole(reply, updates: submitted.updates, log: &log)
            log.write(status: 200)
            return response
        } catch let error as APIError {
            log.write(status: error.status)
            throw error
        } catch {
            log.write(status: 500)
            throw APIError.internalError("\(error)")
        }
    }

    private func promptIds(_ prompt: ValidatedRequest.Prompt, endpoint: Endpoint) throws(APIError) -> [Int] {
        let ids: [Int]
        switch prompt {
        case .tokens(let tokens):
            ids = tokens
        case .text(let text):
            ids = model.tokenizer.encode(text, addBOS: true)
        case .chat(let turns):
            let template: ChatTemplate
            switch model.chatTemplate {
            case .success(let t): template = t
            case .failure(let error): throw APIError.invalidRequest("\(error)", param: "messages")
            }
            let messages = turns.map { ChatMessage(role: ChatMessage.Role(rawValue: $0.role) ?? .user, content: $0.content) }
            ids = model.tokenizer.encode(template.render(messages, addGenerationPrompt: true), addBOS: false)
        }
        let vocabulary = model.vocabSize
        if let bad = ids.first(where: { $0 >= vocabulary }) {
            throw APIError.invalidRequest("Token id \(bad) is outside the vocabulary (0..<\(vocabulary)).", param: "prompt")
        }
        return ids
    }

    private func generationRequest(_ r: ValidatedRequest, prompt: [Int], endpoint: Endpoint) throws(APIError) -> GenerationRequest {
        let param = endpoint == .chat ? "messages" : "prompt"
        guard prompt.count < model.contextLength else {
            throw APIError.contextLengthExceeded(promptTokens: prompt.count, maxTokens: nil, contextLength: model.contextLength, param: param)
        }
        if let maxTokens = r.maxTokens, prompt.count + maxTokens > model.contextLength {
            throw APIError.contextLengthExceeded(promptTokens: prompt.count, maxTokens: maxTokens, contextLength: model.contextLength, param: param)
        }
        // Without a seed each request draws its own, so unseeded requests do not repeat one another.
        let sampling = SamplingParameters(temperature: r.temperature, topK: r.topK, topP: r.topP, seed: r.seed ?? UInt64.random(in: 0 ... .max))
        return GenerationRequest(prompt: prompt, maxTokens: r.maxTokens ?? model.contextLength - prompt.count, sampling: sampling,
                                 stopTokenIds: r.ignoreEOS ? [] : model.eosTokenIds, stopStrings: r.stop, logprobs: r.logprobs)
    }

    private func echoText(_ prompt: ValidatedRequest.Prompt, ids: [Int]) -> String {
        if case .text(let text) = prompt { return text }
        return (try? model.tokenizer.decode(ids, skipSpecial: false)) ?? ""
    }

    /// The whole answer in one body.
    private func whole(_ reply: Reply, updates: AsyncThrowingStream<ServedUpdate, Error>, log: inout AccessLog) async throws -> Response {
        var text = reply.echo ?? ""
        var logprobs: [DecodedTokenLogprobs] = []
        var result: GenerationResult?
        for try await served in updates {
            text += served.update.text
            if let l = served.update.logprobs { logprobs.append(reply.decoded(l)) }
            if let done = served.update.finished {
                result = done
                log.timing = served.timing
            }
        }
        guard let result else { throw APIError.internalError("the engine ended the request without a result") }
        log.completionTokens = result.generated
        let usage = Usage(promptTokens: log.promptTokens, completionTokens: result.generated)
        return .json(reply.whole(text: text, logprobs: reply.request.logprobs == nil ? nil : logprobs,
                                 finish: ChoiceFinishReason(result.finishReason), usage: usage))
    }

    /// Server-sent events: a chunk per update that carries text or log-probabilities, the
    /// finish reason, usage when asked, then `[DONE]`. A failed write (the client left)
    /// cancels the request, which frees its cache at the next step.
    private func streamed(_ reply: Reply, submitted: (id: UInt64, updates: AsyncThrowingStream<ServedUpdate, Error>),
                          log: AccessLog) -> Response {
        let engine = self.engine
        let body = ResponseBody { writer in
            var log = log
            var offset = 0
            do {
                if let first = reply.opening() { try await writer.write(ByteBuffer(string: first)) }
                if let echo = reply.echo {
                    try await writer.write(ByteBuffer(string: reply.chunk(text: echo, logprobs: nil, textOffset: 0, finish: nil)))
                    offset += echo.count
                }
                for try await served in submitted.updates {
                    let u = served.update
                    let logprobs = u.logprobs.map { [reply.decoded($0)] }
                    if let done = u.finished {
                        log.timing = served.timing
                        log.completionTokens = done.generated
                        try await writer.write(ByteBuffer(string: reply.chunk(text: u.text, logprobs: nil, textOffset: offset,
                                                                              finish: ChoiceFinishReason(done.finishReason))))
                        if reply.request.includeUsage {
                            let usage = Usage(promptTokens: log.promptTokens, completionTokens: done.generated)
                            try await writer.write(ByteBuffer(string: reply.usageChunk(usage)))
                        }
                    } else if !u.text.isEmpty || logprobs != nil {
                        try await writer.write(ByteBuffer(string: reply.chunk(text: u.text, logprobs: logprobs, textOffset: offset, finish: nil)))
                        offset += u.text.count
                    }
                }
                try await writer.write(ByteBuffer(string: ServerSentEvents.done))
                try await writer.finish(nil)
                log.write(status: 200)
            } catch {
                engine.cancel(submitted.id)
                log.write(status: 499)
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}

/// The pieces of one answer, in the endpoint's format.
struct Reply: Sendable {
    let id: String
    let created: Int
    let model: String
    let endpoint: CompletionHandler.Endpoint
    let request: ValidatedRequest
    let tokenizer: Tokenizer
    /// The prompt text, when the client asked for it back (`echo`).
    let echo: String?

    func decoded(_ l: TokenLogprobs) -> DecodedTokenLogprobs {
        func token(_ t: TokenLogprob) -> DecodedTokenLogprobs.Token {
            let bytes = (try? tokenizer.bytes(of: t.token, skipSpecial: false)) ?? []
            return .init(text: String(decoding: bytes, as: UTF8.self), bytes: bytes, logprob: t.logprob)
        }
        return DecodedTokenLogprobs(chosen: token(l.chosen), top: l.top.map(token))
    }

    func whole(text: String, logprobs: [DecodedTokenLogprobs]?, finish: ChoiceFinishReason, usage: Usage) -> any Encodable & Sendable {
        switch endpoint {
        case .completions:
            CompletionResponse(id: id, created: created, model: model, choices: [
                CompletionChoice(text: text, logprobs: logprobs.map { CompletionLogprobs($0, textOffset: 0) }, finishReason: finish),
            ], usage: usage)
        case .chat:
            ChatCompletionResponse(id: id, created: created, model: model, choices: [
                .init(message: .init(content: text), logprobs: logprobs.map { ChatLogprobs($0) }, finishReason: finish),
            ], usage: usage)
        }
    }

    /// Chat streams open with the assistant's role.
    func opening() -> String? {
        guard endpoint == .chat else { return nil }
        return ServerSentEvents.data(ChatCompletionChunk(id: id, created: created, model: model,
                                                         choices: [.init(delta: .start)], usage: ChunkUsage(includeUsage: request.includeUsage)))
    }

    func chunk(text: String, logprobs: [DecodedTokenLogprobs]?, textOffset: Int, finish: ChoiceFinishReason?) -> String {
        let usage = ChunkUsage(includeUsage: request.includeUsage)
        switch endpoint {
        case .completions:
            return ServerSentEvents.data(CompletionChunk(id: id, created: created, model: model, choices: [
                CompletionChoice(text: text, logprobs: logprobs.map { CompletionLogprobs($0, textOffset: textOffset) }, finishReason: finish),
            ], usage: usage))
        case .chat:
            let delta = finish != nil && text.isEmpty ? ChatCompletionChunk.Delta() : ChatCompletionChunk.Delta(content: text)
            return ServerSentEvents.data(ChatCompletionChunk(id: id, created: created, model: model, choices: [
                .init(delta: delta, logprobs: logprobs.map { ChatLogprobs($0) }, finishReason: finish),
            ], usage: usage))
        }
    }

    func usageChunk(_ usage: Usage) -> String {
        switch endpoint {
        case .completions: ServerSentEvents.data(CompletionChunk.usageReport(id: id, created: created, model: model, usage: usage))
        case .chat: ServerSentEvents.data(ChatCompletionChunk.usageReport(id: id, created: created, model: model, usage: usage))
        }
    }
}

extension ChoiceFinishReason {
    init(_ reason: FinishReason) {
        switch reason {
        case .stopToken, .stopString: self = .stop
        case .length: self = .length
        case .cancelled: self = .abort
        }
    }
}

extension APIError {
    init(submission error: SubmissionError) {
        switch error {
        case .loading: self = .unavailable("The model is still loading; retry when GET /health answers 200.")
        case .draining: self = .unavailable("The server is shutting down.")
        case .queueFull: self = .queueFull
        case .invalid(let message): self = .invalidRequest(message)
        }
    }
}
