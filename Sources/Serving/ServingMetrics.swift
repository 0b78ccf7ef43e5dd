import CoreMetrics
import Engine
import ExpertLoad

/// The engine's metrics through swift-metrics: whichever backend the factory is (the
/// server uses Prometheus). Names follow Prometheus conventions and vLLM's where they
/// overlap, so existing dashboards read them with a prefix change.
public final class ServingMetrics: @unchecked Sendable {
    /// Steps over which the per-layer MoE figures are averaged.
    public static let layerWindow = 64

    private let factory: MetricsFactory
    private let running: Meter, waiting: Meter
    private let timeToFirstToken: Timer, timePerOutputToken: Timer, requestLatency: Timer
    private let promptTokens: Counter, generationTokens: Counter
    private let prefillStep: Timer, decodeStep: Timer
    private var finishedByReason: [FinishReason: Counter] = [:]
    private var cacheUsed: [Meter] = [], cacheFree: [Meter] = []
    private var layers: [Int: LayerWindow] = [:]
    private var layerGauges: [Int: (dispatch: Meter, combine: Meter, imbalance: Meter, balancedness: Meter)] = [:]

    public init(factory: MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        running = Meter(label: "conclave_running_sequences", factory: factory)
        waiting = Meter(label: "conclave_waiting_sequences", factory: factory)
        timeToFirstToken = Timer(label: "conclave_time_to_first_token_seconds", factory: factory)
        timePerOutputToken = Timer(label: "conclave_time_per_output_token_seconds", factory: factory)
        requestLatency = Timer(label: "conclave_e2e_request_latency_seconds", factory: factory)
        promptTokens = Counter(label: "conclave_prompt_tokens_total", factory: factory)
        generationTokens = Counter(label: "conclave_generation_tokens_total", factory: factory)
        prefillStep = Timer(label: "conclave_step_seconds", dimensions: [("phase", "prefill")], factory: factory)
        decodeStep = Timer(label: "conclave_step_seconds", dimensions: [("phase", "decode")], factory: factory)
    }

    func record(load: SchedulerLoad) {
        running.set(load.running)
        waiting.set(load.waiting)
        while cacheUsed.count < load.reservedPositions.count {
            let pool = [("attention_rank", String(cacheUsed.count))]
            cacheUsed.append(Meter(label: "conclave_cache_positions_used", dimensions: pool, factory: factory))
            cacheFree.append(Meter(label: "conclave_cache_positions_free", dimensions: pool, factory: factory))
        }
        for (pool, used) in load.reservedPositions.enumerated() {
            cacheUsed[pool].set(used)
            cacheFree[pool].set(load.positionsPerPool == .max ? -1 : load.positionsPerPool - used)
        }
    }

    func record(step: StepRecord?) {
        guard let step else { return }
        (step.isPrefill ? prefillStep : decodeStep).recordSeconds(step.seconds)
    }

    func record(finished result: GenerationResult, promptTokens prompt: Int, timing: RequestTiming) {
        promptTokens.increment(by: prompt)
        generationTokens.increment(by: result.generated)
        requestLatency.recordSeconds(timing.total)
        if let ttft = timing.timeToFirstToken {
            timeToFirstToken.recordSeconds(ttft)
            if result.generated > 1 { timePerOutputToken.recordSeconds((timing.total - ttft) / Double(result.generated - 1)) }
        }
        if finishedByReason[result.finishReason] == nil {
            finishedByReason[result.finishReason] = Counter(label: "conclave_finished_sequences_total",
                                                            dimensions: [("reason", result.finishReason.rawValue)], factory: factory)
        }
        finishedByReason[result.finishReason]!.increment()
    }

    /// Per MoE layer, over the last `layerWindow` steps: mean dispatch and combine seconds,
    /// the expert-rank load imbalance (max rows ÷ mean rows, 1 = even) and its inverse as
    /// SGLang and vLLM report it, the balancedness (mean rows ÷ max rows, 1 = even).
    func record(layers samples: [MoELayerSample]) {
        for sample in samples {
            layers[sample.layer, default: LayerWindow()].add(sample)
            if layerGauges[sample.layer] == nil {
                let layer = [("layer", String(sample.layer))]
                layerGauges[sample.layer] = (Meter(label: "conclave_moe_dispatch_seconds", dimensions: layer, factory: factory),
                                             Meter(label: "conclave_moe_combine_seconds", dimensions: layer, factory: factory),
                                             Meter(label: "conclave_moe_expert_load_imbalance", dimensions: layer, factory: factory),
                                             Meter(label: "conclave_moe_expert_balancedness", dimensions: layer, factory: factory))
            }
        }
        for layer in Set(samples.map(\.layer)) {
            let window = layers[layer]!, gauges = layerGauges[layer]!
            gauges.dispatch.set(window.meanDispatch)
            gauges.combine.set(window.meanCombine)
            // One sum over the window for both gauges; balancedness is never 0 (max > 0 implies mean > 0).
            let balancedness = window.balancedness
            gauges.imbalance.set(1 / balancedness)
            gauges.balancedness.set(balancedness)
        }
    }
}

/// The last `ServingMetrics.layerWindow` samples of one MoE layer.
struct LayerWindow {
    private var samples: [MoELayerSample] = []
    private var next = 0

    mutating func add(_ sample: MoELayerSample) {
        if samples.count < ServingMetrics.layerWindow { samples.append(sample) } else { samples[next] = sample }
        next = (next + 1) % ServingMetrics.layerWindow
    }

    var meanDispatch: Double { samples.reduce(0) { $0 + $1.dispatchSeconds } / Double(max(samples.count, 1)) }
    var meanCombine: Double { samples.reduce(0) { $0 + $1.combineSeconds } / Double(max(samples.count, 1)) }

    /// Rows per expert rank summed over the window.
    var rows: [Int] {
        guard let ranks = samples.first?.rowsPerExpertRank.count, ranks > 0 else { return [] }
        var rows = [Int](repeating: 0, count: ranks)
        for s in samples where s.rowsPerExpertRank.count == ranks {
            for (r, n) in s.rowsPerExpertRank.enumerated() { rows[r] += n }
        }
        return rows
    }

    /// Rows per expert rank summed over the window: mean ÷ max (1 without rows).
    var balancedness: Double { Balancedness.of(rows) }
}
