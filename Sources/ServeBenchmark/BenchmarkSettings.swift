/// What a benchmark run sends, where, and how fast.
public struct BenchmarkSettings: Sendable {
    /// The server's base URL ("http://host:port"); requests go nowhere else.
    public var baseURL: String
    /// The model name to request; nil asks `GET /v1/models`.
    public var model: String?
    public var endpoint: Endpoint
    public var rate: RequestRate
    public var requests: Int
    public var promptLength: Int
    public var maxTokens: Int
    /// Most requests in flight; nil takes the default (see `concurrencyLimit`).
    public var concurrency: Int?
    public var apiKey: String?
    public var seed: UInt64
    public var warmup: Int
    /// Seconds each request may take from send to `[DONE]`.
    public var timeout: Double

    public init(baseURL: String, model: String? = nil, endpoint: Endpoint = .completions, rate: RequestRate = .unlimited,
                requests: Int, promptLength: Int, maxTokens: Int, concurrency: Int? = nil, apiKey: String? = nil,
                seed: UInt64 = 0, warmup: Int = 0, timeout: Double = 300) {
        self.baseURL = baseURL
        self.model = model
        self.endpoint = endpoint
        self.rate = rate
        self.requests = requests
        self.promptLength = promptLength
        self.maxTokens = maxTokens
        self.concurrency = concurrency
        self.apiKey = apiKey
        self.seed = seed
        self.warmup = warmup
        self.timeout = timeout
    }

    /// The limit on requests in flight: as given; otherwise all of them when they are sent
    /// at once, and none when a rate paces them (as vLLM's benchmark does).
    public var concurrencyLimit: Int? {
        concurrency ?? (rate == .unlimited ? requests : nil)
    }
}
