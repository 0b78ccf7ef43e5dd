import Foundation

/// Tokens routed to each expert of every MoE layer over a window of a run: what
/// `--record-expert-load FILE` writes (`generate`, `serve`; rank 0 under mpirun) and what
/// expert placement is planned from: JSON with the keys below, one line per layer.
///
/// A token counts once for each of the `num_experts_per_tok` experts the gate chose, so each
/// layer's counts sum to `tokens × num_experts_per_tok`.
public struct ExpertLoadRecord: Codable, Sendable, Equatable {
    public static let currentFormat = "conclave-expert-load/1"

    /// One MoE layer's counts.
    public struct Layer: Codable, Sendable, Equatable {
        public var layer: Int
        /// Indexed by expert id: `n_routed_experts` counts.
        public var tokensPerExpert: [Int]

        public init(layer: Int, tokensPerExpert: [Int]) {
            self.layer = layer
            self.tokensPerExpert = tokensPerExpert
        }

        enum CodingKeys: String, CodingKey {
            case layer
            case tokensPerExpert = "tokens_per_expert"
        }
    }

    /// The time the counts cover.
    public struct Window: Codable, Sendable, Equatable {
        public var start: Date
        public var end: Date
        /// Engine steps that ran tokens, and the tokens they ran (prompt and decode).
        public var steps: Int
        public var tokens: Int

        public init(start: Date, end: Date, steps: Int, tokens: Int) {
            self.start = start
            self.end = end
            self.steps = steps
            self.tokens = tokens
        }
    }

    /// `conclave-expert-load/1`.
    public var format: String
    /// The model's fingerprint (config.json and weight index; for a node's shard, the model it
    /// was cut from): the one every rank compares at cluster start-up.
    public var modelFingerprint: String
    /// The model directory as the run named it (informative).
    public var model: String
    public var routedExperts: Int
    public var expertsPerToken: Int
    /// The gate's expert groups (`n_group`; 1 without groups) and how many a token may use.
    public var groups: Int
    public var groupsPerToken: Int
    public var window: Window
    /// Ascending by layer.
    public var layers: [Layer]

    public init(modelFingerprint: String, model: String, routedExperts: Int, expertsPerToken: Int, groups: Int, groupsPerToken: Int,
                window: Window, layers: [Layer]) {
        format = Self.currentFormat
        self.modelFingerprint = modelFingerprint
        self.model = model
        self.routedExperts = routedExperts
        self.expertsPerToken = expertsPerToken
        self.groups = groups
        self.groupsPerToken = groupsPerToken
        self.window = window
        self.layers = layers.sorted { $0.layer < $1.layer }
    }

    enum CodingKeys: String, CodingKey {
        case format, model, window, layers
        case modelFingerprint = "model_fingerprint"
        case routedExperts = "n_routed_experts"
        case expertsPerToken = "num_experts_per_tok"
        case groups = "n_group"
        case groupsPerToken = "topk_group"
    }

    /// The counts of MoE layer `layer`, if recorded.
    public func tokensPerExpert(layer: Int) -> [Int]? {
        layers.first { $0.layer == layer }?.tokensPerExpert
    }

    // MARK: files

    /// JSON with ISO 8601 times (UTC, milliseconds), keys sorted, one line per layer (a
    /// DeepSeek-V3 record has 58 layers of 256 counts).
    public func jsonData() throws -> Data {
        func string(_ text: String) throws -> String {
            String(decoding: try JSONEncoder().encode(text), as: UTF8.self).replacingOccurrences(of: "\\/", with: "/")
        }
        var lines = ["{"]
        lines.append("  \"format\": \(try string(format)),")
        lines.append("  \"layers\": [")
        for (i, l) in layers.enumerated() {
            let counts = l.tokensPerExpert.map(String.init).joined(separator: ", ")
            lines.append("    {\"layer\": \(l.layer), \"tokens_per_expert\": [\(counts)]}" + (i == layers.count - 1 ? "" : ","))
        }
        lines.append("  ],")
        lines.append("  \"model\": \(try string(model)),")
        lines.append("  \"model_fingerprint\": \(try string(modelFingerprint)),")
        lines.append("  \"n_group\": \(groups),")
        lines.append("  \"n_routed_experts\": \(routedExperts),")
        lines.append("  \"num_experts_per_tok\": \(expertsPerToken),")
        lines.append("  \"topk_group\": \(groupsPerToken),")
        lines.append("  \"window\": {\"end\": \(try string(Self.timeFormatter.string(from: window.end))), "
                     + "\"start\": \(try string(Self.timeFormatter.string(from: window.start))), "
                     + "\"steps\": \(window.steps), \"tokens\": \(window.tokens)}")
        lines.append("}")
        return Data((lines.joined(separator: "\n") + "\n").utf8)
    }

    /// Writes the record atomically (a server rewrites it while running: readers never see half a file).
    public func write(to url: URL) throws {
        try jsonData().write(to: url, options: .atomic)
    }

    /// Reads and checks a recorded file: its format, and per layer `n_routed_experts`
    /// non-negative counts. Every error names the file.
    public static func read(_ url: URL) throws(ExpertLoadError) -> ExpertLoadRecord {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ExpertLoadError(file: url.path, problem: "cannot be read: \((error as NSError).localizedDescription)")
        }
        return try decode(data, source: url.path)
    }

    /// Decodes and checks record JSON; `source` names it in errors.
    public static func decode(_ data: Data, source: String) throws(ExpertLoadError) -> ExpertLoadRecord {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = timeFormatter.date(from: text) ?? plainTimeFormatter.date(from: text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "\"\(text)\" is not an ISO 8601 time like 2025-01-31T12:00:00Z"))
            }
            return date
        }
        let record: ExpertLoadRecord
        do { record = try decoder.decode(ExpertLoadRecord.self, from: data) } catch {
            throw ExpertLoadError(file: source, problem: "is not an expert-load record: \(describe(error))")
        }
        guard record.format == currentFormat else {
            throw ExpertLoadError(file: source, problem: "has format \"\(record.format)\"; this conclave reads \"\(currentFormat)\"")
        }
        guard record.routedExperts > 0, record.expertsPerToken > 0, record.expertsPerToken <= record.routedExperts else {
            throw ExpertLoadError(file: source, problem: "has n_routed_experts \(record.routedExperts) and num_experts_per_tok \(record.expertsPerToken); both must be positive, the second at most the first")
        }
        guard record.groups >= 1, record.routedExperts % record.groups == 0 else {
            throw ExpertLoadError(file: source, problem: "has n_group \(record.groups), which must be ≥ 1 and divide n_routed_experts (\(record.routedExperts))")
        }
        guard !record.layers.isEmpty else { throw ExpertLoadError(file: source, problem: "records no MoE layer") }
        var seen = Set<Int>()
        for l in record.layers {
            guard seen.insert(l.layer).inserted else {
                throw ExpertLoadError(file: source, problem: "records layer \(l.layer) twice")
            }
            guard l.tokensPerExpert.count == record.routedExperts else {
                throw ExpertLoadError(file: source, problem: "layer \(l.layer) has \(l.tokensPerExpert.count) counts; n_routed_experts is \(record.routedExperts)")
            }
            if let e = l.tokensPerExpert.firstIndex(where: { $0 < 0 }) {
                throw ExpertLoadError(file: source, problem: "layer \(l.layer) expert \(e) has a negative count (\(l.tokensPerExpert[e]))")
            }
        }
        var sorted = record
        sorted.layers.sort { $0.layer < $1.layer }
        return sorted
    }

    nonisolated(unsafe) private static let timeFormatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()

    nonisolated(unsafe) private static let plainTimeFormatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f
    }()

    private static func describe(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "" : " at " + keys.joined(separator: ".")
        }
        switch decoding {
        case .keyNotFound(let key, let context): return "key \"\(key.stringValue)\" is missing\(path(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return context.debugDescription + path(context)
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as NSError?)?.localizedDescription
            return (underlying ?? context.debugDescription) + path(context)
        @unknown default: return "\(decoding)"
        }
    }
}

/// Why an expert-load file cannot be used: one line naming the file.
public struct ExpertLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var problem: String

    public init(file: String, problem: String) {
        self.file = file
        self.problem = problem
    }

    public var description: String {
        "expert-load file \(file) \(problem)".split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
