/// The sampling, stopping and streaming fields both endpoints accept, decoded from the same
/// JSON object as the endpoint's own fields.
struct SharedFields: Decodable {
    var temperature: Float?
    var topP: Float?
    var topK: Int?
    var seed: Int64?
    var stop: StopSequences?
    var stream: Bool?
    var streamOptions: StreamOptions?
    var ignoreEOS: Bool?
    var n: Int?
    var presencePenalty: Float?
    var frequencyPenalty: Float?

    enum CodingKeys: String, CodingKey {
        case temperature, seed, stop, stream, n
        case topP = "top_p", topK = "top_k", streamOptions = "stream_options", ignoreEOS = "ignore_eos"
        case presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty"
    }

    init(from decoder: any Decoder) throws {
        let fields = try decoder.object(keyedBy: CodingKeys.self)
        temperature = try fields.optional(.temperature)
        topP = try fields.optional(.topP)
        topK = try fields.optional(.topK)
        seed = try fields.optional(.seed)
        stop = try fields.optional(.stop)
        stream = try fields.optional(.stream)
        streamOptions = try fields.optional(.streamOptions)
        ignoreEOS = try fields.optional(.ignoreEOS)
        n = try fields.optional(.n)
        presencePenalty = try fields.optional(.presencePenalty)
        frequencyPenalty = try fields.optional(.frequencyPenalty)
    }

    /// The validated request, given the endpoint's own validated fields.
    func request(model: String, prompt: ValidatedRequest.Prompt, maxTokens: Int?, logprobs: Int?,
                 echo: Bool = false) throws(APIError) -> ValidatedRequest {
        let temperature = temperature ?? 1
        try ensure((0...2).contains(temperature), "'temperature' must be between 0 and 2.", param: "temperature")
        let topP = topP ?? 1
        try ensure(topP > 0 && topP <= 1, "'top_p' must be greater than 0 and at most 1.", param: "top_p")
        let topK = topK ?? 0
        // vLLM spells "off" as -1, OpenAI has no top_k: accept both spellings.
        try ensure(topK >= -1, "'top_k' must be a positive integer, or 0 or -1 for no limit.", param: "top_k")
        try ensure((n ?? 1) == 1, "Only one choice per request is supported: 'n' must be 1.", param: "n")
        try ensure((presencePenalty ?? 0) == 0, "'presence_penalty' is not supported: send 0 or omit it.",
                   param: "presence_penalty")
        try ensure((frequencyPenalty ?? 0) == 0, "'frequency_penalty' is not supported: send 0 or omit it.",
                   param: "frequency_penalty")
        let stop = stop?.sequences ?? []
        try ensure(stop.count <= StopSequences.limit, "'stop' accepts at most \(StopSequences.limit) sequences.",
                   param: "stop")
        let stream = stream ?? false
        return ValidatedRequest(
            model: model, prompt: prompt, maxTokens: maxTokens, temperature: temperature, topP: topP,
            topK: max(topK, 0), seed: seed.map { UInt64(bitPattern: $0) }, stop: stop, stream: stream,
            includeUsage: stream && streamOptions?.includeUsage == true, logprobs: logprobs, echo: echo,
            ignoreEOS: ignoreEOS ?? false)
    }
}

/// `stop`: one string or an array of them.
struct StopSequences: RequestValue {
    static let expectation = "a string or an array of strings"
    /// OpenAI's limit.
    static let limit = 4

    var sequences: [String]

    init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer()
        let sequences = if let one = try? value.decode(String.self) { [one] } else { try value.decode([String].self) }
        // An empty sequence would stop before the first token; clients send "" to mean "none".
        self.sequences = sequences.filter { !$0.isEmpty }
    }
}

/// `stream_options`.
struct StreamOptions: RequestValue {
    static let expectation = "an object"

    var includeUsage: Bool?

    enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }

    init(from decoder: any Decoder) throws {
        includeUsage = try decoder.object(keyedBy: CodingKeys.self).optional(.includeUsage)
    }
}
