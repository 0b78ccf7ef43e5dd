/// Why a value breaks the protocol; wrapped into a `ControlPlaneError` naming the rank.
struct ValueError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// The protocol's rules, checked by the sender before packing and by the receiver after
/// unpacking, so a bad message is caught at whichever end has the bug.
extension ControlMessage {
    func validate(sender: Int) throws(ValueError) {
        switch self {
        case .hello(let m): try m.validate(sender: sender)
        case .topology(let m): try m.validate()
        case .submitRequest(let m): try m.validate()
        case .stepPlan(let m): try m.validate()
        case .stepResult(let m): try m.validate()
        case .finish(let m): try m.validate()
        case .stats(let m): try m.validate()
        case .errorReport(let m): try nonNegative(m.rank, "rank")
        case .shutdown: break
        }
    }
}

private func nonNegative(_ value: Int, _ name: @autoclosure () -> String) throws(ValueError) {
    if value < 0 { throw ValueError("\(name()) \(value) is negative") }
}

private func tokenIds(_ ids: [Int], _ name: String) throws(ValueError) {
    if let (i, id) = ids.enumerated().first(where: { $0.element < 0 }) {
        throw ValueError("\(name)[\(i)] is token id \(id), which is negative")
    }
}

private func expertList(_ experts: [Int], _ name: String) throws(ValueError) {
    var seen = Set<Int>()
    for e in experts {
        if e < 0 { throw ValueError("\(name) holds negative expert index \(e)") }
        if !seen.insert(e).inserted { throw ValueError("\(name) lists expert \(e) twice") }
    }
}

private func seconds(_ value: Double, _ name: String) throws(ValueError) {
    if !(value.isFinite && value >= 0) { throw ValueError("\(name) \(value) is not a finite non-negative number of seconds") }
}

extension Hello {
    func validate(sender: Int) throws(ValueError) {
        try nonNegative(rank, "rank")
        if rank != sender { throw ValueError("hello names rank \(rank) but comes from rank \(sender)") }
        try expertList(experts, "experts")
        try nonNegative(residentWeightBytes, "resident_weight_bytes")
        try nonNegative(diskBytes, "disk_bytes")
        if pid <= 0 { throw ValueError("pid \(pid) is not a process id") }
    }
}

extension Topology {
    func validate() throws(ValueError) {
        if worldSize < 1 { throw ValueError("world_size \(worldSize) is less than 1") }
        if ranks.count != worldSize {
            throw ValueError("world_size is \(worldSize) but \(ranks.count) ranks are assigned")
        }
        var seen = Set<Int>()
        for a in ranks {
            if !(0..<worldSize).contains(a.rank) { throw ValueError("rank \(a.rank) is outside 0..<\(worldSize)") }
            if !seen.insert(a.rank).inserted { throw ValueError("rank \(a.rank) is assigned twice") }
            try expertList(a.experts, "ranks[\(a.rank)].experts")
        }
        try nonNegative(numHiddenLayers, "num_hidden_layers")
        try nonNegative(numRoutedExperts, "num_routed_experts")
        if numRoutedExperts > 0, let (r, e) = ranks.lazy.flatMap({ a in a.experts.map { (a.rank, $0) } }).first(where: { $0.1 >= numRoutedExperts }) {
            throw ValueError("rank \(r) holds expert \(e) but the model has \(numRoutedExperts) routed experts")
        }
    }
}

extension SamplingOptions {
    func validate(_ name: String) throws(ValueError) {
        if !(temperature.isFinite && temperature >= 0) { throw ValueError("\(name).temperature \(temperature) is not a finite number ≥ 0") }
        try nonNegative(topK, "\(name).top_k")
        if !(topP > 0 && topP <= 1) { throw ValueError("\(name).top_p \(topP) is outside (0, 1]") }
    }
}

extension SubmitRequest {
    func validate() throws(ValueError) {
        if promptTokenIds.isEmpty { throw ValueError("request \(requestId) has an empty prompt") }
        try tokenIds(promptTokenIds, "request \(requestId): prompt_token_ids")
        try sampling.validate("request \(requestId): sampling")
        if maxTokens < 1 { throw ValueError("request \(requestId): max_tokens \(maxTokens) is less than 1") }
        try tokenIds(stopTokenIds, "request \(requestId): stop_token_ids")
    }
}

extension StepPlan {
    func validate() throws(ValueError) {
        var seen = Set<UInt64>()
        for (i, w) in work.enumerated() {
            let name = "step \(step): work[\(i)] (sequence \(w.sequenceId))"
            if !seen.insert(w.sequenceId).inserted { throw ValueError("\(name) appears twice in one step") }
            try nonNegative(w.attentionRank, "\(name): attention_rank")
            if w.tokens.isEmpty { throw ValueError("\(name) has no tokens") }
            if w.phase == .decode && w.tokens.count != 1 {
                throw ValueError("\(name) is a decode step with \(w.tokens.count) tokens instead of 1")
            }
            try tokenIds(w.tokens, "\(name): tokens")
            try nonNegative(w.startPosition, "\(name): start_position")
            try w.sampling?.validate("\(name): sampling")
        }
    }
}

extension StepResult {
    func validate() throws(ValueError) {
        for (i, t) in tokens.enumerated() {
            if t.token < 0 { throw ValueError("step \(step): tokens[\(i)] (sequence \(t.sequenceId)) is token id \(t.token), which is negative") }
            try nonNegative(t.logitsRows, "step \(step): tokens[\(i)].logits_rows")
        }
    }
}

extension Finish {
    func validate() throws(ValueError) {
        try tokenIds(tokens, "request \(requestId): tokens")
    }
}

extension RankStats {
    func validate() throws(ValueError) {
        try nonNegative(rank, "rank")
        try nonNegative(steps, "steps")
        try nonNegative(prefillTokens, "prefill_tokens")
        try nonNegative(decodeTokens, "decode_tokens")
        try nonNegative(expertTokens, "expert_tokens")
        try seconds(busySeconds, "busy_seconds")
        try seconds(wallSeconds, "wall_seconds")
        let lengths = [dispatchSeconds.count, combineSeconds.count, dispatchBytes.count, combineBytes.count].filter { $0 > 0 }
        if Set(lengths).count > 1 {
            throw ValueError("per-layer arrays differ in length (dispatch_seconds \(dispatchSeconds.count), combine_seconds \(combineSeconds.count), dispatch_bytes \(dispatchBytes.count), combine_bytes \(combineBytes.count))")
        }
        for (i, s) in dispatchSeconds.enumerated() { try seconds(s, "dispatch_seconds[\(i)]") }
        for (i, s) in combineSeconds.enumerated() { try seconds(s, "combine_seconds[\(i)]") }
        for (i, b) in dispatchBytes.enumerated() { try nonNegative(b, "dispatch_bytes[\(i)]") }
        for (i, b) in combineBytes.enumerated() { try nonNegative(b, "combine_bytes[\(i)]") }
    }
}
