internal import CProtobufC
import Sampling

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Conversion between the Swift messages and protobuf-c's generated structs. Nothing of
/// protobuf-c leaves this file.
enum Wire {
    // MARK: packing

    static func pack(_ message: ControlMessage, senderRank: Int) throws(ValueError) -> [UInt8] {
        let arena = PackArena()
        var env = Conclave__V1__Envelope()
        conclave__v1__envelope__init(&env)
        env.protocol_version = ControlPlane.protocolVersion
        env.sender_rank = try int32(senderRank, "sender_rank")
        switch message {
        case .hello(let m):
            env.body_case = CONCLAVE__V1__ENVELOPE__BODY_HELLO
            env.hello = arena.box(try c(m, arena))
        case .topology(let m):
            env.body_case = CONCLAVE__V1__ENVELOPE__BODY_TOPOLOGY
            env.topology = arena.box(try c(m, arena))
        case .submitRequest(let m):
            env.body_case = CONCLAVE__V1__ENVELOPE__BODY_SUBMIT_REQUEST
            env.submit_request = arena.box(try c(m, arena))
        case .stepPlan(let m):
            env.body_case = CONCLAVE__V1__ENVELOPE__BODY_STEP_PLAN
            env.step_plan = arena.box(try c(m, arena))
        case .stepResult(let m):
            env.body_case = CONCLAVE__V1__ENVELOPE__BODY_STEP_RESULT
            env.step_result = arena.box(try c(m, arena))
        case .finish(let m):
            env.body_case = CONCLAVE__V1__ENVELOPE__BODY_FINISH
            env.finish = arena.box(try c(m, arena))
        case .stats(let m):
            env.body_case = CONCLAVE__V1__ENVELOPE__BODY_STATS
            env.stats = arena.box(try c(m, arena))
        case .errorReport(let m):
            env.body_case = CONCLAVE__V1__ENVELOPE__BODY_ERROR_REPORT
            env.error_report = arena.box(try c(m, arena))
        case .shutdown(let m):
            env.body_case = CONCLAVE__V1__ENVELOPE__BODY_SHUTDOWN
            var s = Conclave__V1__Shutdown()
            conclave__v1__shutdown__init(&s)
            s.reason = arena.string(m.reason)
            (s.n_baseline_dispatch_counts, s.baseline_dispatch_counts) = arena.array(m.baselineDispatchCounts.map { UInt64(max($0, 0)) })
            (s.n_baseline_combine_counts, s.baseline_combine_counts) = arena.array(m.baselineCombineCounts.map { UInt64(max($0, 0)) })
            s.baseline_repetitions = UInt32(clamping: m.baselineRepetitions)
            env.shutdown = arena.box(s)
        }
        // The arena owns every pointer in `env`; it is freed when this scope ends.
        return withExtendedLifetime(arena) {
            withUnsafePointer(to: &env) { p in
                let size = conclave__v1__envelope__get_packed_size(p)
                return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                    count = size == 0 ? 0 : conclave__v1__envelope__pack(p, buffer.baseAddress!)
                }
            }
        }
    }

    private static func c(_ m: Hello, _ arena: PackArena) throws(ValueError) -> Conclave__V1__Hello {
        var h = Conclave__V1__Hello()
        conclave__v1__hello__init(&h)
        h.rank = try int32(m.rank, "rank")
        h.host = arena.string(m.host)
        h.role = c(m.role)
        (h.n_experts, h.experts) = arena.array(try uint32s(m.experts, "experts"))
        h.resident_weight_bytes = try uint64(m.residentWeightBytes, "resident_weight_bytes")
        h.pid = try int32(m.pid, "pid")
        h.disk_bytes = try uint64(m.diskBytes, "disk_bytes")
        h.model_directory = arena.string(m.modelDirectory)
        return h
    }

    private static func c(_ m: Topology, _ arena: PackArena) throws(ValueError) -> Conclave__V1__Topology {
        var t = Conclave__V1__Topology()
        conclave__v1__topology__init(&t)
        t.world_size = try uint32(m.worldSize, "world_size")
        var ranks: [UnsafeMutablePointer<Conclave__V1__RankAssignment>?] = []
        for a in m.ranks {
            var r = Conclave__V1__RankAssignment()
            conclave__v1__rank_assignment__init(&r)
            r.rank = try int32(a.rank, "ranks.rank")
            r.role = c(a.role)
            (r.n_experts, r.experts) = arena.array(try uint32s(a.experts, "ranks[\(a.rank)].experts"))
            r.host = arena.string(a.host)
            ranks.append(arena.box(r))
        }
        (t.n_ranks, t.ranks) = arena.array(ranks)
        t.model_name = arena.string(m.modelName)
        t.model_hash = arena.string(m.modelHash)
        t.num_hidden_layers = try uint32(m.numHiddenLayers, "num_hidden_layers")
        t.num_routed_experts = try uint32(m.numRoutedExperts, "num_routed_experts")
        return t
    }

    private static func c(_ m: SamplingOptions, _ arena: PackArena) throws(ValueError) -> UnsafeMutablePointer<Conclave__V1__SamplingParams> {
        var s = Conclave__V1__SamplingParams()
        conclave__v1__sampling_params__init(&s)
        s.temperature = m.temperature
        s.top_k = try uint32(m.topK, "top_k")
        s.top_p = m.topP
        s.seed = m.seed
        return arena.box(s)
    }

    private static func c(_ m: SubmitRequest, _ arena: PackArena) throws(ValueError) -> Conclave__V1__SubmitRequest {
        var r = Conclave__V1__SubmitRequest()
        conclave__v1__submit_request__init(&r)
        r.request_id = m.requestId
        (r.n_prompt_token_ids, r.prompt_token_ids) = arena.array(try int32s(m.promptTokenIds, "prompt_token_ids"))
        r.sampling = try c(m.sampling, arena)
        r.max_tokens = try uint32(m.maxTokens, "max_tokens")
        (r.n_stop_token_ids, r.stop_token_ids) = arena.array(try int32s(m.stopTokenIds, "stop_token_ids"))
        (r.n_stop_strings, r.stop_strings) = arena.array(m.stopStrings.map { Optional(arena.string($0)) })
        r.ignore_eos = m.ignoreEOS ? 1 : 0
        return r
    }

    private static func c(_ m: StepPlan, _ arena: PackArena) throws(ValueError) -> Conclave__V1__StepPlan {
        var p = Conclave__V1__StepPlan()
        conclave__v1__step_plan__init(&p)
        p.step = m.step
        var work: [UnsafeMutablePointer<Conclave__V1__SequenceWork>?] = []
        for w in m.work {
            var s = Conclave__V1__SequenceWork()
            conclave__v1__sequence_work__init(&s)
            s.sequence_id = w.sequenceId
            s.attention_rank = try int32(w.attentionRank, "attention_rank")
            s.phase = w.phase == .prefill ? CONCLAVE__V1__PHASE__PHASE_PREFILL : CONCLAVE__V1__PHASE__PHASE_DECODE
            (s.n_tokens, s.tokens) = arena.array(try int32s(w.tokens, "tokens"))
            s.start_position = try uint32(w.startPosition, "start_position")
            s.sample = w.sample ? 1 : 0
            if let sampling = w.sampling { s.sampling = try c(sampling, arena) }
            s.return_logits = w.returnLogits ? 1 : 0
            s.capacity = try uint32(w.capacity, "capacity")
            if let top = w.logprobs {
                s.logprobs = 1
                s.top_logprobs = try uint32(top, "top_logprobs")
            }
            work.append(arena.box(s))
        }
        (p.n_work, p.work) = arena.array(work)
        (p.n_finished_sequences, p.finished_sequences) = arena.array(m.finishedSequences)
        return p
    }

    private static func c(_ m: StepResult, _ arena: PackArena) throws(ValueError) -> Conclave__V1__StepResult {
        var r = Conclave__V1__StepResult()
        conclave__v1__step_result__init(&r)
        r.step = m.step
        var tokens: [UnsafeMutablePointer<Conclave__V1__SequenceToken>?] = []
        for t in m.tokens {
            var s = Conclave__V1__SequenceToken()
            conclave__v1__sequence_token__init(&s)
            s.sequence_id = t.sequenceId
            s.token = try int32(t.token, "token")
            s.logits_rows = try uint32(t.logitsRows, "logits_rows")
            if let l = t.logprobs {
                s.has_logprobs = 1
                s.logprob = l.chosen.logprob
                (s.n_top_ids, s.top_ids) = arena.array(try int32s(l.top.map(\.token), "top_ids"))
                (s.n_top_logprobs, s.top_logprobs) = arena.array(l.top.map(\.logprob))
            }
            tokens.append(arena.box(s))
        }
        (r.n_tokens, r.tokens) = arena.array(tokens)
        return r
    }

    private static func c(_ m: Finish, _ arena: PackArena) throws(ValueError) -> Conclave__V1__Finish {
        var f = Conclave__V1__Finish()
        conclave__v1__finish__init(&f)
        f.request_id = m.requestId
        f.reason = switch m.reason {
        case .stopToken: CONCLAVE__V1__FINISH_REASON__FINISH_REASON_STOP_TOKEN
        case .stopString: CONCLAVE__V1__FINISH_REASON__FINISH_REASON_STOP_STRING
        case .length: CONCLAVE__V1__FINISH_REASON__FINISH_REASON_LENGTH
        case .cancelled: CONCLAVE__V1__FINISH_REASON__FINISH_REASON_CANCELLED
        case .error: CONCLAVE__V1__FINISH_REASON__FINISH_REASON_ERROR
        }
        (f.n_tokens, f.tokens) = arena.array(try int32s(m.tokens, "tokens"))
        f.text = arena.string(m.text)
        return f
    }

    private static func c(_ m: RankStats, _ arena: PackArena) throws(ValueError) -> Conclave__V1__Stats {
        var s = Conclave__V1__Stats()
        conclave__v1__stats__init(&s)
        s.rank = try int32(m.rank, "rank")
        s.steps = try uint64(m.steps, "steps")
        s.prefill_tokens = try uint64(m.prefillTokens, "prefill_tokens")
        s.decode_tokens = try uint64(m.decodeTokens, "decode_tokens")
        s.expert_tokens = try uint64(m.expertTokens, "expert_tokens")
        s.busy_seconds = m.busySeconds
        s.wall_seconds = m.wallSeconds
        (s.n_dispatch_seconds, s.dispatch_seconds) = arena.array(m.dispatchSeconds)
        (s.n_combine_seconds, s.combine_seconds) = arena.array(m.combineSeconds)
        (s.n_dispatch_bytes, s.dispatch_bytes) = arena.array(try uint64s(m.dispatchBytes, "dispatch_bytes"))
        (s.n_combine_bytes, s.combine_bytes) = arena.array(try uint64s(m.combineBytes, "combine_bytes"))
        return s
    }

    private static func c(_ m: ErrorReport, _ arena: PackArena) throws(ValueError) -> Conclave__V1__ErrorReport {
        var e = Conclave__V1__ErrorReport()
        conclave__v1__error_report__init(&e)
        e.rank = try int32(m.rank, "rank")
        e.code = switch m.code {
        case .internal: CONCLAVE__V1__ERROR_CODE__ERROR_CODE_INTERNAL
        case .invalidRequest: CONCLAVE__V1__ERROR_CODE__ERROR_CODE_INVALID_REQUEST
        case .protocol: CONCLAVE__V1__ERROR_CODE__ERROR_CODE_PROTOCOL
        case .modelMismatch: CONCLAVE__V1__ERROR_CODE__ERROR_CODE_MODEL_MISMATCH
        case .outOfMemory: CONCLAVE__V1__ERROR_CODE__ERROR_CODE_OUT_OF_MEMORY
        case .peerTimeout: CONCLAVE__V1__ERROR_CODE__ERROR_CODE_PEER_TIMEOUT
        case .transport: CONCLAVE__V1__ERROR_CODE__ERROR_CODE_TRANSPORT
        }
        e.message = arena.string(m.message)
        return e
    }

    private static func c(_ role: RankRole) -> Conclave__V1__Role {
        switch role {
        case .router: CONCLAVE__V1__ROLE__ROLE_ROUTER
        case .attention: CONCLAVE__V1__ROLE__ROLE_ATTENTION
        case .expert: CONCLAVE__V1__ROLE__ROLE_EXPERT
        }
    }

    // MARK: unpacking

    static func unpack(_ bytes: [UInt8], from rank: Int) throws(ControlPlaneError) -> ControlMessage {
        if bytes.isEmpty { throw ControlPlaneError(.malformed, rank: rank, "empty message") }
        let unpacked = bytes.withUnsafeBufferPointer { conclave__v1__envelope__unpack(nil, $0.count, $0.baseAddress) }
        guard let env = unpacked else {
            throw ControlPlaneError(.malformed, rank: rank, "\(bytes.count) bytes are not a conclave.v1.Envelope")
        }
        defer { conclave__v1__envelope__free_unpacked(env, nil) }
        let e = env.pointee
        guard e.protocol_version == ControlPlane.protocolVersion else {
            throw ControlPlaneError(.unsupportedVersion, rank: rank, "protocol version \(e.protocol_version), expected \(ControlPlane.protocolVersion)")
        }
        guard Int(e.sender_rank) == rank else {
            throw ControlPlaneError(.senderMismatch, rank: rank, "envelope claims sender rank \(e.sender_rank)")
        }
        let message: ControlMessage?
        do throws(ValueError) {
            message = try body(of: e)
        } catch {
            throw ControlPlaneError(.invalidValue, rank: rank, error.reason)
        }
        guard let message else {
            let unknown = (0..<Int(e.base.n_unknown_fields)).map { String(e.base.unknown_fields[$0].tag) }
            throw ControlPlaneError(.missingBody, rank: rank, unknown.isEmpty
                ? "envelope has no body"
                : "envelope has no body this build knows (unknown field \(unknown.joined(separator: ", ")))")
        }
        return message
    }

    /// The envelope's body, or nil when none is set.
    private static func body(of e: Conclave__V1__Envelope) throws(ValueError) -> ControlMessage? {
        switch e.body_case {
        case CONCLAVE__V1__ENVELOPE__BODY_HELLO: .hello(try swift(present(e.hello, "hello")))
        case CONCLAVE__V1__ENVELOPE__BODY_TOPOLOGY: .topology(try swift(present(e.topology, "topology")))
        case CONCLAVE__V1__ENVELOPE__BODY_SUBMIT_REQUEST: .submitRequest(try swift(present(e.submit_request, "submit_request")))
        case CONCLAVE__V1__ENVELOPE__BODY_STEP_PLAN: .stepPlan(try swift(present(e.step_plan, "step_plan")))
        case CONCLAVE__V1__ENVELOPE__BODY_STEP_RESULT: .stepResult(try swift(present(e.step_result, "step_result")))
        case CONCLAVE__V1__ENVELOPE__BODY_FINISH: .finish(try swift(present(e.finish, "finish")))
        case CONCLAVE__V1__ENVELOPE__BODY_STATS: .stats(try swift(present(e.stats, "stats")))
        case CONCLAVE__V1__ENVELOPE__BODY_ERROR_REPORT: .errorReport(try swift(present(e.error_report, "error_report")))
        case CONCLAVE__V1__ENVELOPE__BODY_SHUTDOWN: .shutdown(try swift(present(e.shutdown, "shutdown")))
        default: nil
        }
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__Hello>) throws(ValueError) -> Hello {
        let h = p.pointee
        return Hello(rank: Int(h.rank), host: try string(h.host, "hello.host"), role: try role(h.role, "hello.role"),
                     experts: array(h.experts, h.n_experts).map(Int.init),
                     residentWeightBytes: try int(h.resident_weight_bytes, "hello.resident_weight_bytes"),
                     pid: Int(h.pid), diskBytes: try int(h.disk_bytes, "hello.disk_bytes"),
                     modelDirectory: try string(h.model_directory, "hello.model_directory"))
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__Topology>) throws(ValueError) -> Topology {
        let t = p.pointee
        var ranks: [RankAssignment] = []
        for r in array(t.ranks, t.n_ranks) {
            let a = try present(r, "topology.ranks").pointee
            ranks.append(RankAssignment(rank: Int(a.rank), role: try role(a.role, "topology.ranks[\(a.rank)].role"),
                                        experts: array(a.experts, a.n_experts).map(Int.init),
                                        host: try string(a.host, "topology.ranks[\(a.rank)].host")))
        }
        return Topology(worldSize: Int(t.world_size), ranks: ranks,
                        modelName: try string(t.model_name, "topology.model_name"),
                        modelHash: try string(t.model_hash, "topology.model_hash"),
                        numHiddenLayers: Int(t.num_hidden_layers), numRoutedExperts: Int(t.num_routed_experts))
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__SamplingParams>) -> SamplingOptions {
        let s = p.pointee
        return SamplingOptions(temperature: s.temperature, topK: Int(s.top_k), topP: s.top_p, seed: s.seed)
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__SubmitRequest>) throws(ValueError) -> SubmitRequest {
        let r = p.pointee
        return SubmitRequest(requestId: r.request_id,
                             promptTokenIds: array(r.prompt_token_ids, r.n_prompt_token_ids).map(Int.init),
                             sampling: swift(try present(r.sampling, "submit_request \(r.request_id): sampling")),
                             maxTokens: Int(r.max_tokens),
                             stopTokenIds: array(r.stop_token_ids, r.n_stop_token_ids).map(Int.init),
                             stopStrings: try strings(r.stop_strings, r.n_stop_strings, "submit_request \(r.request_id): stop_strings"),
                             ignoreEOS: r.ignore_eos != 0)
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__Shutdown>) throws(ValueError) -> Shutdown {
        let m = p.pointee
        return Shutdown(reason: try string(m.reason, "shutdown.reason"),
                        baselineDispatchCounts: array(m.baseline_dispatch_counts, m.n_baseline_dispatch_counts).map { Int($0) },
                        baselineCombineCounts: array(m.baseline_combine_counts, m.n_baseline_combine_counts).map { Int($0) },
                        baselineRepetitions: Int(m.baseline_repetitions))
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__StepPlan>) throws(ValueError) -> StepPlan {
        let plan = p.pointee
        var work: [SequenceWork] = []
        for (i, wp) in array(plan.work, plan.n_work).enumerated() {
            let w = try present(wp, "step_plan.work[\(i)]").pointee
            let phase: SequenceWork.Phase
            switch w.phase {
            case CONCLAVE__V1__PHASE__PHASE_PREFILL: phase = .prefill
            case CONCLAVE__V1__PHASE__PHASE_DECODE: phase = .decode
            default: throw ValueError("step \(plan.step): work[\(i)] (sequence \(w.sequence_id)) has phase \(w.phase.rawValue), which is not prefill or decode")
            }
            work.append(SequenceWork(sequenceId: w.sequence_id, attentionRank: Int(w.attention_rank), phase: phase,
                                     tokens: array(w.tokens, w.n_tokens).map(Int.init),
                                     startPosition: Int(w.start_position), sample: w.sample != 0,
                                     sampling: w.sampling.map { swift(UnsafePointer($0)) },
                                     returnLogits: w.return_logits != 0, capacity: Int(w.capacity),
                                     logprobs: w.logprobs != 0 ? Int(w.top_logprobs) : nil))
        }
        return StepPlan(step: plan.step, work: work,
                        finishedSequences: array(plan.finished_sequences, plan.n_finished_sequences))
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__StepResult>) throws(ValueError) -> StepResult {
        let r = p.pointee
        var tokens: [SequenceToken] = []
        for (i, tp) in array(r.tokens, r.n_tokens).enumerated() {
            let t = try present(tp, "step_result.tokens[\(i)]").pointee
            let ids = array(t.top_ids, t.n_top_ids), logprobs = array(t.top_logprobs, t.n_top_logprobs)
            guard ids.count == logprobs.count else {
                throw ValueError("step_result.tokens[\(i)] has \(ids.count) top_ids but \(logprobs.count) top_logprobs")
            }
            let top = zip(ids, logprobs).map { TokenLogprob(token: Int($0), logprob: $1) }
            tokens.append(SequenceToken(sequenceId: t.sequence_id, token: Int(t.token), logitsRows: Int(t.logits_rows),
                                        logprobs: t.has_logprobs == 0 ? nil
                                            : TokenLogprobs(chosen: TokenLogprob(token: Int(t.token), logprob: t.logprob), top: top)))
        }
        return StepResult(step: r.step, tokens: tokens)
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__Finish>) throws(ValueError) -> Finish {
        let f = p.pointee
        let reason: Finish.Reason
        switch f.reason {
        case CONCLAVE__V1__FINISH_REASON__FINISH_REASON_STOP_TOKEN: reason = .stopToken
        case CONCLAVE__V1__FINISH_REASON__FINISH_REASON_STOP_STRING: reason = .stopString
        case CONCLAVE__V1__FINISH_REASON__FINISH_REASON_LENGTH: reason = .length
        case CONCLAVE__V1__FINISH_REASON__FINISH_REASON_CANCELLED: reason = .cancelled
        case CONCLAVE__V1__FINISH_REASON__FINISH_REASON_ERROR: reason = .error
        default: throw ValueError("request \(f.request_id): finish reason \(f.reason.rawValue) is not one this build knows")
        }
        return Finish(requestId: f.request_id, reason: reason, tokens: array(f.tokens, f.n_tokens).map(Int.init),
                      text: try string(f.text, "finish.text"))
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__Stats>) throws(ValueError) -> RankStats {
        let s = p.pointee
        var dispatchBytes: [Int] = [], combineBytes: [Int] = []
        for b in array(s.dispatch_bytes, s.n_dispatch_bytes) { dispatchBytes.append(try int(b, "stats.dispatch_bytes")) }
        for b in array(s.combine_bytes, s.n_combine_bytes) { combineBytes.append(try int(b, "stats.combine_bytes")) }
        return RankStats(rank: Int(s.rank), steps: try int(s.steps, "stats.steps"),
                         prefillTokens: try int(s.prefill_tokens, "stats.prefill_tokens"),
                         decodeTokens: try int(s.decode_tokens, "stats.decode_tokens"),
                         expertTokens: try int(s.expert_tokens, "stats.expert_tokens"),
                         busySeconds: s.busy_seconds, wallSeconds: s.wall_seconds,
                         dispatchSeconds: array(s.dispatch_seconds, s.n_dispatch_seconds),
                         combineSeconds: array(s.combine_seconds, s.n_combine_seconds),
                         dispatchBytes: dispatchBytes, combineBytes: combineBytes)
    }

    private static func swift(_ p: UnsafePointer<Conclave__V1__ErrorReport>) throws(ValueError) -> ErrorReport {
        let e = p.pointee
        let code: ErrorReport.Code
        switch e.code {
        case CONCLAVE__V1__ERROR_CODE__ERROR_CODE_INTERNAL: code = .internal
        case CONCLAVE__V1__ERROR_CODE__ERROR_CODE_INVALID_REQUEST: code = .invalidRequest
        case CONCLAVE__V1__ERROR_CODE__ERROR_CODE_PROTOCOL: code = .protocol
        case CONCLAVE__V1__ERROR_CODE__ERROR_CODE_MODEL_MISMATCH: code = .modelMismatch
        case CONCLAVE__V1__ERROR_CODE__ERROR_CODE_OUT_OF_MEMORY: code = .outOfMemory
        case CONCLAVE__V1__ERROR_CODE__ERROR_CODE_PEER_TIMEOUT: code = .peerTimeout
        case CONCLAVE__V1__ERROR_CODE__ERROR_CODE_TRANSPORT: code = .transport
        default: throw ValueError("error_report code \(e.code.rawValue) is not one this build knows")
        }
        return ErrorReport(rank: Int(e.rank), code: code, message: try string(e.message, "error_report.message"))
    }

    private static func role(_ r: Conclave__V1__Role, _ name: String) throws(ValueError) -> RankRole {
        switch r {
        case CONCLAVE__V1__ROLE__ROLE_ROUTER: .router
        case CONCLAVE__V1__ROLE__ROLE_ATTENTION: .attention
        case CONCLAVE__V1__ROLE__ROLE_EXPERT: .expert
        default: throw ValueError("\(name) \(r.rawValue) is not router, attention or expert")
        }
    }

    // MARK: helpers

    private static func present<T>(_ p: UnsafeMutablePointer<T>?, _ name: String) throws(ValueError) -> UnsafePointer<T> {
        guard let p else { throw ValueError("\(name) is missing") }
        return UnsafePointer(p)
    }

    private static func array<T>(_ p: UnsafeMutablePointer<T>?, _ n: Int) -> [T] {
        guard let p, n > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: p, count: n))
    }

    private static func string(_ p: UnsafeMutablePointer<CChar>?, _ name: String) throws(ValueError) -> String {
        guard let p else { return "" }
        guard let s = String(validatingCString: p) else { throw ValueError("\(name) is not valid UTF-8") }
        return s
    }

    private static func strings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: Int, _ name: String) throws(ValueError) -> [String] {
        var out: [String] = []
        for (i, s) in array(p, n).enumerated() { out.append(try string(s, "\(name)[\(i)]")) }
        return out
    }

    private static func int(_ v: UInt64, _ name: String) throws(ValueError) -> Int {
        guard let i = Int(exactly: v) else { throw ValueError("\(name) \(v) does not fit in Int") }
        return i
    }

    private static func int32(_ v: Int, _ name: String) throws(ValueError) -> Int32 {
        guard let i = Int32(exactly: v) else { throw ValueError("\(name) \(v) does not fit in int32") }
        return i
    }

    private static func uint32(_ v: Int, _ name: String) throws(ValueError) -> UInt32 {
        guard let i = UInt32(exactly: v) else { throw ValueError("\(name) \(v) does not fit in uint32") }
        return i
    }

    private static func uint64(_ v: Int, _ name: String) throws(ValueError) -> UInt64 {
        guard let i = UInt64(exactly: v) else { throw ValueError("\(name) \(v) does not fit in uint64") }
        return i
    }

    private static func int32s(_ vs: [Int], _ name: String) throws(ValueError) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(vs.count)
        for v in vs { out.append(try int32(v, name)) }
        return out
    }

    private static func uint32s(_ vs: [Int], _ name: String) throws(ValueError) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(vs.count)
        for v in vs { out.append(try uint32(v, name)) }
        return out
    }

    private static func uint64s(_ vs: [Int], _ name: String) throws(ValueError) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(vs.count)
        for v in vs { out.append(try uint64(v, name)) }
        return out
    }
}

/// Owns the C memory behind one message being packed; freed when the arena goes away,
/// which `Wire.pack` pins to the end of its scope.
private final class PackArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        for block in blocks { free(block) }
    }

    /// A C copy of `values` and its count (`nil`, 0 when empty). `T` is a trivial C type.
    func array<T>(_ values: [T]) -> (Int, UnsafeMutablePointer<T>?) {
        guard !values.isEmpty else { return (0, nil) }
        let raw = malloc(MemoryLayout<T>.stride * values.count)!
        blocks.append(raw)
        let typed = raw.bindMemory(to: T.self, capacity: values.count)
        values.withUnsafeBufferPointer { typed.initialize(from: $0.baseAddress!, count: values.count) }
        return (values.count, typed)
    }

    func box<T>(_ value: T) -> UnsafeMutablePointer<T> {
        let raw = malloc(MemoryLayout<T>.stride)!
        blocks.append(raw)
        let typed = raw.bindMemory(to: T.self, capacity: 1)
        typed.initialize(to: value)
        return typed
    }

    /// A NUL-terminated copy of `s` (text after an embedded NUL is lost, as in any C string).
    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        blocks.append(UnsafeMutableRawPointer(p))
        return p
    }
}
