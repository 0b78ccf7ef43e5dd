import Foundation

// Reading and writing config.json. Two spellings are read:
// - DeepSeek's published one: `rope_theta` + `rope_scaling: {type: "yarn", factor, ...}`;
// - newer transformers': `rope_parameters: {rope_type, rope_theta, factor, ...}`, `head_dim` equal to
//   `qk_rope_head_dim` (ignored), `dtype` for `torch_dtype`, and no `scoring_func`/`topk_method`.
// Unknown keys are ignored. DeepSeek's spelling is written.

extension ModelConfig {
    /// Parses and validates the `config.json` at `url`.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ConfigError.unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
        try self.init(jsonData: data, source: url.path)
    }

    /// Parses and validates config.json contents; `source` names the file in errors.
    public init(jsonData: Data, source: String = "config.json") throws {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: jsonData)
        } catch {
            throw ConfigError.invalidJSON(file: source, reason: (error as NSError).localizedDescription)
        }
        guard let object = root as? [String: Any] else {
            throw ConfigError.invalidJSON(file: source, reason: "the top level is \(JSONFields.describe(root)), not an object")
        }
        let j = JSONFields(object: object, prefix: "", file: source)

        self.init(defaultsFor: try Self.architecture(j))
        vocabSize = try j.int("vocab_size") ?? vocabSize
        hiddenSize = try j.int("hidden_size") ?? hiddenSize
        intermediateSize = try j.int("intermediate_size") ?? intermediateSize
        moeIntermediateSize = try j.int("moe_intermediate_size") ?? moeIntermediateSize
        numHiddenLayers = try j.int("num_hidden_layers") ?? numHiddenLayers
        numAttentionHeads = try j.int("num_attention_heads") ?? numAttentionHeads
        firstKDenseReplace = try j.int("first_k_dense_replace") ?? firstKDenseReplace
        moeLayerFreq = try j.int("moe_layer_freq") ?? moeLayerFreq

        // null means "dense model" in DeepSeek's configs; the group sizes default to "one group".
        nRoutedExperts = try j.isNull("n_routed_experts") ? 0 : j.int("n_routed_experts") ?? nRoutedExperts
        nSharedExperts = try j.isNull("n_shared_experts") ? 0 : j.int("n_shared_experts") ?? nSharedExperts
        numExpertsPerTok = try j.isNull("num_experts_per_tok") ? 0 : j.int("num_experts_per_tok") ?? numExpertsPerTok
        nGroup = try j.isNull("n_group") ? 1 : j.int("n_group") ?? nGroup
        topkGroup = try j.isNull("topk_group") ? nGroup : j.int("topk_group") ?? topkGroup
        if architecture == .deepseekV2 && j.value("topk_group") == nil {
            topkGroup = nGroup  // transformers leaves V2's topk_group unset: no group restriction
        }
        if let method = try j.string("topk_method") {
            // "gready" is the (typo) default of DeepSeek-V2's own configuration class.
            guard let m = TopkMethod(rawValue: method == "gready" ? "greedy" : method) else {
                throw ConfigError.unsupportedValue(field: "topk_method", value: "\"\(method)\"",
                                                   supported: TopkMethod.allCases.map(\.rawValue), file: source)
            }
            topkMethod = m
        }
        if let scoring = try j.string("scoring_func") {
            guard let s = ScoringFunc(rawValue: scoring) else {
                throw ConfigError.unsupportedValue(field: "scoring_func", value: "\"\(scoring)\"",
                                                   supported: ScoringFunc.allCases.map(\.rawValue), file: source)
            }
            scoringFunc = s
        }
        normTopkProb = try j.bool("norm_topk_prob") ?? normTopkProb
        routedScalingFactor = try j.double("routed_scaling_factor") ?? routedScalingFactor

        qLoraRank = try j.isNull("q_lora_rank") ? nil : j.int("q_lora_rank") ?? qLoraRank
        kvLoraRank = try j.int("kv_lora_rank") ?? kvLoraRank
        qkNopeHeadDim = try j.int("qk_nope_head_dim") ?? qkNopeHeadDim
        qkRopeHeadDim = try j.int("qk_rope_head_dim") ?? qkRopeHeadDim
        vHeadDim = try j.int("v_head_dim") ?? vHeadDim

        maxPositionEmbeddings = try j.int("max_position_embeddings") ?? maxPositionEmbeddings
        rope = try Self.rope(j, maxPositionEmbeddings: maxPositionEmbeddings)
        ropeInterleave = try j.bool("rope_interleave") ?? ropeInterleave
        rmsNormEps = try j.double("rms_norm_eps") ?? rmsNormEps
        tieWordEmbeddings = try j.bool("tie_word_embeddings") ?? tieWordEmbeddings
        bosTokenId = try j.isNull("bos_token_id") ? nil : j.int("bos_token_id") ?? bosTokenId
        eosTokenIds = try j.isNull("eos_token_id") ? [] : j.intOrIntList("eos_token_id") ?? eosTokenIds
        hiddenAct = try j.string("hidden_act") ?? hiddenAct
        attentionBias = try j.bool("attention_bias") ?? attentionBias
        fp8BlockSize = try Self.fp8BlockSize(j)
        torchDtype = try j.string("torch_dtype") ?? j.string("dtype")

        try validate(source: source)
    }

    private static func architecture(_ j: JSONFields) throws -> Architecture {
        if let names = try j.stringList("architectures"), let name = names.first {
            guard let a = Architecture(rawValue: name) else { throw ConfigError.unsupportedArchitecture(name, file: j.file) }
            return a
        }
        if let type = try j.string("model_type") {
            guard let a = Architecture.allCases.first(where: { $0.modelType == type }) else {
                throw ConfigError.unsupportedArchitecture(type, file: j.file)
            }
            return a
        }
        throw ConfigError.missingField("architectures (or model_type)", file: j.file)
    }

    private static func rope(_ j: JSONFields, maxPositionEmbeddings: Int) throws -> RopeConfig {
        // transformers 5 writes `rope_parameters`; DeepSeek writes `rope_theta` + `rope_scaling`.
        let params = try j.object("rope_parameters") ?? j.object("rope_scaling")
        var rope = RopeConfig(theta: try params?.double("rope_theta") ?? j.double("rope_theta") ?? 10_000)
        guard let p = params else { return rope }
        let typeKey = p.object["rope_type"] != nil ? "rope_type" : "type"
        let type = try p.string(typeKey) ?? "default"
        switch type {
        case "default":
            return rope
        case "yarn":
            let original = try p.int("original_max_position_embeddings")
                ?? j.int("original_max_position_embeddings") ?? maxPositionEmbeddings
            guard original > 0 else {
                throw ConfigError.invalidValue(field: p.field("original_max_position_embeddings"), value: "\(original)",
                                               reason: "must be positive", file: j.file)
            }
            // transformers derives a missing factor from the two context lengths.
            let factor = try p.double("factor") ?? Double(maxPositionEmbeddings) / Double(original)
            rope.yarn = Yarn(
                factor: factor,
                originalMaxPositionEmbeddings: original,
                betaFast: try p.double("beta_fast") ?? 32,
                betaSlow: try p.double("beta_slow") ?? 1,
                mscale: try p.double("mscale") ?? 1,
                mscaleAllDim: try p.double("mscale_all_dim") ?? 0,
                truncate: try p.bool("truncate") ?? true,
                attentionFactor: try p.double("attention_factor"))
            return rope
        default:
            throw ConfigError.unsupportedValue(field: p.field(typeKey), value: "\"\(type)\"",
                                               supported: ["default", "yarn"], file: j.file)
        }
    }

    private static func fp8BlockSize(_ j: JSONFields) throws -> BlockSize? {
        guard let q = try j.object("quantization_config") else { return nil }
        let method = try q.string("quant_method") ?? "(absent)"
        guard method == "fp8" else {
            throw ConfigError.unsupportedValue(field: q.field("quant_method"), value: "\"\(method)\"",
                                               supported: ["fp8"], file: j.file)
        }
        if let fmt = try q.string("fmt"), fmt != "e4m3" {
            throw ConfigError.unsupportedValue(field: q.field("fmt"), value: "\"\(fmt)\"", supported: ["e4m3"], file: j.file)
        }
        // transformers' FineGrainedFP8Config defaults to 128 × 128 tiles.
        guard let block = try q.intList("weight_block_size") else { return BlockSize(rows: 128, cols: 128) }
        guard block.count == 2 else {
            throw ConfigError.invalidValue(field: q.field("weight_block_size"), value: "\(block)",
                                           reason: "expected [rows, cols]", file: j.file)
        }
        return BlockSize(rows: block[0], cols: block[1])
    }

    /// Checks every dimension and routing parameter; errors name the field and `source`.
    public func validate(source: String = "config.json") throws {
        func fail(_ field: String, _ value: Any, _ reason: String) -> ConfigError {
            .invalidValue(field: field, value: "\(value)", reason: reason, file: source)
        }
        let positive: [(String, Int)] = [
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
            ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
            ("kv_lora_rank", kvLoraRank), ("qk_nope_head_dim", qkNopeHeadDim), ("qk_rope_head_dim", qkRopeHeadDim),
            ("v_head_dim", vHeadDim), ("moe_layer_freq", moeLayerFreq),
            ("max_position_embeddings", maxPositionEmbeddings),
        ]
        for (field, value) in positive where value <= 0 { throw fail(field, value, "must be positive") }
        if let q = qLoraRank, q <= 0 { throw fail("q_lora_rank", q, "must be positive or null (plain q_proj)") }
        if qkRopeHeadDim % 2 != 0 { throw fail("qk_rope_head_dim", qkRopeHeadDim, "must be even (dims rotate in pairs)") }
        if firstKDenseReplace < 0 { throw fail("first_k_dense_replace", firstKDenseReplace, "must not be negative") }
        if !(rmsNormEps > 0) { throw fail("rms_norm_eps", rmsNormEps, "must be positive") }
        if !(rope.theta > 0) { throw fail("rope_theta", rope.theta, "must be positive") }
        if let y = rope.yarn {
            if !(y.factor > 0) { throw fail("rope_scaling.factor", y.factor, "must be positive") }
            if y.originalMaxPositionEmbeddings <= 0 {
                throw fail("rope_scaling.original_max_position_embeddings", y.originalMaxPositionEmbeddings, "must be positive")
            }
        }
        if nRoutedExperts < 0 { throw fail("n_routed_experts", nRoutedExperts, "must not be negative (0 or null: no MoE)") }
        if nSharedExperts < 0 { throw fail("n_shared_experts", nSharedExperts, "must not be negative") }
        if nRoutedExperts > 0 {
            if moeIntermediateSize <= 0 { throw fail("moe_intermediate_size", moeIntermediateSize, "must be positive") }
            if numExpertsPerTok <= 0 {
                throw fail("num_experts_per_tok", numExpertsPerTok, "must be set to a positive number when n_routed_experts > 0")
            }
            if numExpertsPerTok > nRoutedExperts {
                throw fail("num_experts_per_tok", numExpertsPerTok, "exceeds n_routed_experts (\(nRoutedExperts))")
            }
            if nGroup <= 0 { throw fail("n_group", nGroup, "must be positive") }
            if nRoutedExperts % nGroup != 0 {
                throw fail("n_group", nGroup, "must divide n_routed_experts (\(nRoutedExperts))")
            }
            if topkGroup <= 0 || topkGroup > nGroup {
                throw fail("topk_group", topkGroup, "must be between 1 and n_group (\(nGroup))")
            }
            if topkMethod != .greedy && numExpertsPerTok > topkGroup * expertsPerGroup {
                throw fail("num_experts_per_tok", numExpertsPerTok,
                           "exceeds the experts in topk_group (\(topkGroup)) groups of \(expertsPerGroup)")
            }
            if topkMethod == .noauxTC && expertsPerGroup < 2 {
                throw fail("n_group", nGroup, "noaux_tc ranks groups by their top-2 experts, so each group needs at least 2 "
                           + "(n_routed_experts \(nRoutedExperts) / n_group \(nGroup))")
            }
        }
        if let b = fp8BlockSize, b.rows <= 0 || b.cols <= 0 {
            throw fail("quantization_config.weight_block_size", b, "tile sizes must be positive")
        }
        if hiddenAct != "silu" {
            throw ConfigError.unsupportedValue(field: "hidden_act", value: "\"\(hiddenAct)\"", supported: ["silu"], file: source)
        }
        if attentionBias {
            throw ConfigError.unsupportedValue(field: "attention_bias", value: "true", supported: ["false"], file: source)
        }
    }

    /// config.json in DeepSeek's own spelling (`rope_theta`, `rope_scaling`, explicit `topk_method`/`scoring_func`),
    /// readable by DeepSeek's code, transformers and this parser.
    public func jsonObject() -> [String: Any] {
        var o: [String: Any] = [
            "architectures": [architecture.rawValue],
            "model_type": architecture.modelType,
            "vocab_size": vocabSize,
            "hidden_size": hiddenSize,
            "intermediate_size": intermediateSize,
            "moe_intermediate_size": moeIntermediateSize,
            "num_hidden_layers": numHiddenLayers,
            "num_attention_heads": numAttentionHeads,
            "num_key_value_heads": numAttentionHeads,
            "first_k_dense_replace": firstKDenseReplace,
            "moe_layer_freq": moeLayerFreq,
            "n_routed_experts": nRoutedExperts > 0 ? nRoutedExperts : NSNull(),
            "n_shared_experts": nSharedExperts,
            "num_experts_per_tok": nRoutedExperts > 0 ? numExpertsPerTok : NSNull(),
            "n_group": nGroup,
            "topk_group": topkGroup,
            "topk_method": topkMethod.rawValue,
            "scoring_func": scoringFunc.rawValue,
            "norm_topk_prob": normTopkProb,
            "routed_scaling_factor": routedScalingFactor,
            "q_lora_rank": qLoraRank.map { $0 as Any } ?? NSNull(),
            "kv_lora_rank": kvLoraRank,
            "qk_nope_head_dim": qkNopeHeadDim,
            "qk_rope_head_dim": qkRopeHeadDim,
            "v_head_dim": vHeadDim,
            "rope_theta": rope.theta,
            "rope_interleave": ropeInterleave,
            "rms_norm_eps": rmsNormEps,
            "tie_word_embeddings": tieWordEmbeddings,
            "max_position_embeddings": maxPositionEmbeddings,
            "bos_token_id": bosTokenId.map { $0 as Any } ?? NSNull(),
            "eos_token_id": eosTokenIds.count == 1 ? eosTokenIds[0] as Any : eosTokenIds.isEmpty ? NSNull() as Any : eosTokenIds as Any,
            "hidden_act": hiddenAct,
            "attention_bias": attentionBias,
        ]
        if let y = rope.yarn {
            var s: [String: Any] = [
                "type": "yarn",
                "factor": y.factor,
                "original_max_position_embeddings": y.originalMaxPositionEmbeddings,
                "beta_fast": y.betaFast,
                "beta_slow": y.betaSlow,
                "mscale": y.mscale,
                "mscale_all_dim": y.mscaleAllDim,
            ]
            if !y.truncate { s["truncate"] = false }
            if let a = y.attentionFactor { s["attention_factor"] = a }
            o["rope_scaling"] = s
        } else {
            o["rope_scaling"] = NSNull()
        }
        if let b = fp8BlockSize {
            o["quantization_config"] = [
                "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                "weight_block_size": [b.rows, b.cols],
            ] as [String: Any]
        }
        if let d = torchDtype { o["torch_dtype"] = d }
        return o
    }

    /// `jsonObject()` serialised with sorted keys, pretty-printed: the bytes of a config.json.
    public func jsonData() throws -> Data {
        try JSONSerialization.data(withJSONObject: jsonObject(), options: [.sortedKeys, .prettyPrinted])
    }
}

/// Typed access to one JSON object; type errors name the field (with its path) and the file.
struct JSONFields {
    let object: [String: Any]
    let prefix: String
    let file: String

    func field(_ key: String) -> String { prefix.isEmpty ? key : "\(prefix).\(key)" }

    /// The value at `key`, nil when absent or null.
    func value(_ key: String) -> Any? {
        guard let v = object[key], !(v is NSNull) else { return nil }
        return v
    }

    func isNull(_ key: String) -> Bool { object[key] is NSNull }

    private func wrongType(_ key: String, _ expected: String, _ v: Any) -> ConfigError {
        .wrongType(field: field(key), expected: expected, found: Self.describe(v), file: file)
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = Self.asInt(v) else { throw wrongType(key, "an integer", v) }
        return i
    }

    func double(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber, !Self.isBool(n) else { throw wrongType(key, "a number", v) }
        return n.doubleValue
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber, Self.isBool(n) || n.doubleValue == 0 || n.doubleValue == 1 else {
            throw wrongType(key, "true or false", v)
        }
        return n.boolValue
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else { throw wrongType(key, "a string", v) }
        return s
    }

    func stringList(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        if let s = v as? String { return [s] }
        guard let a = v as? [Any], let s = a as? [String] else { throw wrongType(key, "a list of strings", v) }
        return s
    }

    func intList(_ key: String) throws -> [Int]? {
        guard let v = value(key) else { return nil }
        guard let a = v as? [Any] else { throw wrongType(key, "a list of integers", v) }
        let ints = a.compactMap(Self.asInt)
        guard ints.count == a.count else { throw wrongType(key, "a list of integers", v) }
        return ints
    }

    func intOrIntList(_ key: String) throws -> [Int]? {
        guard let v = value(key) else { return nil }
        if let i = Self.asInt(v) { return [i] }
        if let a = v as? [Any] {
            let ints = a.compactMap(Self.asInt)
            if ints.count == a.count { return ints }
        }
        throw wrongType(key, "an integer or a list of integers", v)
    }

    func object(_ key: String) throws -> JSONFields? {
        guard let v = value(key) else { return nil }
        guard let o = v as? [String: Any] else { throw wrongType(key, "an object", v) }
        return JSONFields(object: o, prefix: field(key), file: file)
    }

    static func isBool(_ n: NSNumber) -> Bool {
        String(cString: n.objCType) == "c" || String(describing: type(of: n)).contains("Boolean")
    }

    static func asInt(_ v: Any) -> Int? {
        guard let n = v as? NSNumber, !isBool(n) else { return nil }
        let d = n.doubleValue
        guard d == d.rounded(), abs(d) < 9.0e15 else { return nil }
        return n.intValue
    }

    /// A short rendering of a JSON value for error messages.
    static func describe(_ v: Any) -> String {
        switch v {
        case is NSNull: return "null"
        case let s as String: return "\"\(s.prefix(60))\""
        case let n as NSNumber: return isBool(n) ? (n.boolValue ? "true" : "false") : "\(n)"
        case is [Any]: return "a list"
        case is [String: Any]: return "an object"
        default: return "\(v)"
        }
    }
}
