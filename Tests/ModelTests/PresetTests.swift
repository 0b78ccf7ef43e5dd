import Checkpoint
import Foundation
import Kernels
import Presets
import Routing
import Sampling
import Testing

@Suite struct PresetTests {
    /// configs/models/ mirrors the presets the binary embeds.
    @Test(arguments: ModelPreset.allCases)
    func configsFolderMatchesEmbeddedPresets(_ preset: ModelPreset) throws {
        let file = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("configs/models/\(preset.rawValue).json")
        let committed = try ModelConfig(contentsOf: file)
        #expect(committed == preset.config)
    }

    @Test func benchMidIsTheSpecifiedModel() throws {
        let c = ModelPreset.benchMid.config
        #expect(c.architecture == .deepseekV3 && c.vocabSize == 32000 && c.hiddenSize == 1024 && c.numHiddenLayers == 8)
        #expect(c.firstKDenseReplace == 1 && c.intermediateSize == 2816 && c.nRoutedExperts == 64 && c.moeIntermediateSize == 512)
        #expect(c.numExpertsPerTok == 6 && c.nSharedExperts == 1 && c.nGroup == 8 && c.topkGroup == 4 && c.numAttentionHeads == 16)
        #expect(c.qLoraRank == 384 && c.kvLoraRank == 256 && c.qkNopeHeadDim == 64 && c.qkRopeHeadDim == 32 && c.vHeadDim == 64)
    }

    /// The tiny model is written, loads, and the same seed writes the same bytes.
    @Test func tinyIsDeterministicAndLoads() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-preset-\(getpid())")
        let a = root.appendingPathComponent("a"), b = root.appendingPathComponent("b")
        try SyntheticCheckpoint.write(preset: .tiny, to: a, seed: 7)
        try SyntheticCheckpoint.write(preset: .tiny, to: b, seed: 7)
        defer { try? FileManager.default.removeItem(at: root) }
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            #expect(try Data(contentsOf: a.appendingPathComponent(name)) == Data(contentsOf: b.appendingPathComponent(name)), "\(name)")
        }
        let checkpoint = try Checkpoint(directory: a)
        #expect(checkpoint.config.nRoutedExperts == 16)
        #expect(checkpoint.contains("model.layers.1.mlp.experts.15.down_proj.weight"))
        #expect(try checkpoint.info("model.layers.1.mlp.experts.15.down_proj.weight").dtype == .bf16)
    }

    // MARK: bench-mid-skewed

    /// A temporary directory removed when the test ends.
    static func scratch(_ label: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("conclave-preset-\(label)-\(getpid())-\(UUID().uuidString)")
    }

    static func fnv(_ data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }

    /// bench-mid's gate tensors are the bytes they were before bench-mid-skewed existed (the
    /// hash was taken from the preset's writer then); bench-mid-skewed's gate weights are the same
    /// bytes and only its correction biases differ, by the skew's offsets.
    @Test func benchMidIsUnchangedAndSkewedDiffersOnlyInTheBias() throws {
        let root = Self.scratch("pin")
        defer { try? FileManager.default.removeItem(at: root) }
        let names: Set<String> = ["model.layers.1.mlp.gate.weight", "model.layers.1.mlp.gate.e_score_correction_bias",
                                  "model.layers.7.mlp.gate.e_score_correction_bias"]
        let plain = root.appendingPathComponent("bench-mid"), skewed = root.appendingPathComponent("bench-mid-skewed")
        try SyntheticCheckpoint.write(preset: .benchMid, to: plain, seed: 0, including: names.contains)
        try SyntheticCheckpoint.write(preset: .benchMidSkewed, to: skewed, seed: 0, including: names.contains)
        #expect(Self.fnv(try Data(contentsOf: plain.appendingPathComponent("model.safetensors"))) == "9b13347548f4c254")
        #expect(try Data(contentsOf: plain.appendingPathComponent("config.json")) == Data(contentsOf: skewed.appendingPathComponent("config.json")))

        let a = try Checkpoint(directory: plain), b = try Checkpoint(directory: skewed)
        let weight = "model.layers.1.mlp.gate.weight"
        #expect(Array(try a.storedBytes(of: weight).bytes) == Array(try b.storedBytes(of: weight).bytes))
        let skew = try #require(ModelPreset.benchMidSkewed.routingSkew)
        #expect(ModelPreset.benchMid.routingSkew == nil && ModelPreset.tiny.routingSkew == nil)
        for layer in [1, 7] {
            let name = "model.layers.\(layer).mlp.gate.e_score_correction_bias"
            let base = try a.vector(name, count: 64), biased = try b.vector(name, count: 64)
            let offsets = skew.biasOffsets(layer: layer, experts: 64, seed: 0)
            for e in 0..<64 { #expect(abs(biased[e] - (base[e] + offsets[e])) <= 1e-6, "layer \(layer) expert \(e)") }
        }
    }

    /// Share of a layer's (token, expert) choices that its 8 most chosen experts take, and those experts.
    static func topEightShare(_ checkpoint: Checkpoint, layer: Int, input: UnsafePointer<Float>, tokens: Int) throws -> (share: Double, hottest: [Int]) {
        let gate = try Gate(checkpoint: checkpoint, layer: layer)
        var table = RoutingTable(topK: checkpoint.config.numExpertsPerTok)
        gate.route(input, tokens: tokens, into: &table)
        var counts = [Int](repeating: 0, count: checkpoint.config.nRoutedExperts)
        for e in table.experts { counts[Int(e)] += 1 }
        let hottest = counts.indices.sorted { counts[$0] > counts[$1] || (counts[$0] == counts[$1] && $0 < $1) }.prefix(8)
        return (Double(hottest.reduce(0) { $0 + counts[$1] }) / Double(table.experts.count), Array(hottest))
    }

    /// 512 token states routed by every MoE layer's gate (random vectors, RMS-normalised as the
    /// gate's input is; writing the 32000-row embedding for a real prompt takes minutes in a debug
    /// build, and the skew lives in the bias, whatever the input): on bench-mid-skewed the 8 most
    /// chosen experts of every layer take more than 40% of the choices, and they are mostly the
    /// layer's own hot set (different layers, different experts); on bench-mid less than 30%
    /// (even would be 12.5%).
    @Test func skewedRoutingIsSkewedAndBenchMidIsNot() throws {
        let root = Self.scratch("skew")
        defer { try? FileManager.default.removeItem(at: root) }
        let skew = try #require(ModelPreset.benchMidSkewed.routingSkew)
        let tokens = 512
        var hotSets: Set<[Int]> = []
        for preset in [ModelPreset.benchMid, .benchMidSkewed] {
            let directory = root.appendingPathComponent(preset.rawValue)
            try SyntheticCheckpoint.write(preset: preset, to: directory, seed: 0, including: { $0.contains(".mlp.gate.") })
            let checkpoint = try Checkpoint(directory: directory)
            let c = checkpoint.config, h = c.hiddenSize
            var rng = RandomSource(seed: 1)
            let raw = (0..<tokens * h).map { _ in Float(rng.next() >> 40) * (2 / Float(1 << 24)) - 1 }
            var x = [Float](repeating: 0, count: tokens * h)
            let ones = [Float](repeating: 1, count: h)
            x.withUnsafeMutableBufferPointer { out in
                raw.withUnsafeBufferPointer { input in
                    for t in 0..<tokens {
                        VectorOps.rmsNorm(input.baseAddress! + t * h, weight: ones, eps: Float(c.rmsNormEps), out: out.baseAddress! + t * h, dim: h)
                    }
                }
            }
            for layer in (0..<c.numHiddenLayers).filter(c.isMoELayer) {
                let (share, hottest) = try x.withUnsafeBufferPointer {
                    try Self.topEightShare(checkpoint, layer: layer, input: $0.baseAddress!, tokens: tokens)
                }
                if preset == .benchMidSkewed {
                    #expect(share > 0.4, "bench-mid-skewed layer \(layer): the 8 hottest experts take \(share)")
                    let hotSet = Set(skew.hotOrder(layer: layer, experts: c.nRoutedExperts, seed: 0).prefix(12))
                    #expect(hottest.filter(hotSet.contains).count >= 6, "layer \(layer): hottest \(hottest), hot set \(hotSet.sorted())")
                    hotSets.insert(hottest.sorted())
                } else {
                    #expect(share < 0.3, "bench-mid layer \(layer): the 8 hottest experts take \(share)")
                }
            }
        }
        #expect(hotSets.count == 7, "every MoE layer has its own hot set: \(hotSets)")
    }
}
