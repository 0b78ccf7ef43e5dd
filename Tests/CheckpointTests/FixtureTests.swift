import Foundation
import Kernels
import Testing
@testable import Checkpoint

/// `Tests/Fixtures/models`, the transformers-generated model directories (see Tests/Fixtures/README.md).
let fixtureModels = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/models")

let fixtureCases = ["v3-sigmoid-grouped", "v3-yarn-sharded", "v2-softmax-plainq", "v3-fp8", "v3-bf16", "v3-fp8-release"]

func fixtureExists(_ name: String) -> Bool {
    FileManager.default.fileExists(atPath: fixtureModels.appendingPathComponent(name).appendingPathComponent("config.json").path)
}

@Suite struct TransformersFixtures {
    @Test(arguments: fixtureCases.filter(fixtureExists))
    func loadsEveryTensor(_ name: String) throws {
        let ck = try Checkpoint(directory: fixtureModels.appendingPathComponent(name))
        var loaded = 0
        for tensor in ck.tensorNames where !tensor.hasSuffix("_scale_inv") {
            let info = try ck.info(tensor)
            switch info.shape.count {
            case 2:
                let m = try ck.matrix(tensor, rows: info.shape[0], cols: info.shape[1])
                #expect(m.rows == info.shape[0] && m.cols == info.shape[1])
            case 1:
                #expect(try ck.vector(tensor, count: info.shape[0]).count == info.shape[0])
            default:
                Issue.record("tensor \(tensor) in \(info.file) has shape \(info.shape)")
            }
            loaded += 1
        }
        #expect(loaded > 0)
        #expect(ck.residentBytes > 0)
    }

    /// The shapes config.json implies for each of DeepSeek's tensor names, checked against the files.
    @Test(arguments: fixtureCases.filter(fixtureExists))
    func shapesFollowTheConfig(_ name: String) throws {
        let ck = try Checkpoint(directory: fixtureModels.appendingPathComponent(name))
        let c = ck.config
        let h = c.hiddenSize, heads = c.numAttentionHeads
        _ = try ck.matrix("model.embed_tokens.weight", rows: c.vocabSize, cols: h)
        _ = try ck.matrix("lm_head.weight", rows: c.vocabSize, cols: h)
        _ = try ck.vector("model.norm.weight", count: h)
        for l in 0..<c.numHiddenLayers {
            let p = "model.layers.\(l)."
            _ = try ck.vector(p + "input_layernorm.weight", count: h)
            _ = try ck.vector(p + "post_attention_layernorm.weight", count: h)
            if let q = c.qLoraRank {
                _ = try ck.matrix(p + "self_attn.q_a_proj.weight", rows: q, cols: h)
                _ = try ck.vector(p + "self_attn.q_a_layernorm.weight", count: q)
                _ = try ck.matrix(p + "self_attn.q_b_proj.weight", rows: heads * c.qkHeadDim, cols: q)
            } else {
                _ = try ck.matrix(p + "self_attn.q_proj.weight", rows: heads * c.qkHeadDim, cols: h)
            }
            _ = try ck.matrix(p + "self_attn.kv_a_proj_with_mqa.weight", rows: c.kvLoraRank + c.qkRopeHeadDim, cols: h)
            _ = try ck.vector(p + "self_attn.kv_a_layernorm.weight", count: c.kvLoraRank)
            _ = try ck.matrix(p + "self_attn.kv_b_proj.weight", rows: heads * (c.qkNopeHeadDim + c.vHeadDim), cols: c.kvLoraRank)
            _ = try ck.matrix(p + "self_attn.o_proj.weight", rows: h, cols: heads * c.vHeadDim)
            if c.isMoELayer(l) {
                _ = try ck.matrix(p + "mlp.gate.weight", rows: c.nRoutedExperts, cols: h)
                if c.topkMethod == .noauxTC {
                    _ = try ck.vector(p + "mlp.gate.e_score_correction_bias", count: c.nRoutedExperts)
                }
                for e in 0..<c.nRoutedExperts {
                    _ = try ck.matrix(p + "mlp.experts.\(e).gate_proj.weight", rows: c.moeIntermediateSize, cols: h)
                    _ = try ck.matrix(p + "mlp.experts.\(e).up_proj.weight", rows: c.moeIntermediateSize, cols: h)
                    _ = try ck.matrix(p + "mlp.experts.\(e).down_proj.weight", rows: h, cols: c.moeIntermediateSize)
                }
                let shared = c.nSharedExperts * c.moeIntermediateSize
                _ = try ck.matrix(p + "mlp.shared_experts.gate_proj.weight", rows: shared, cols: h)
                _ = try ck.matrix(p + "mlp.shared_experts.up_proj.weight", rows: shared, cols: h)
                _ = try ck.matrix(p + "mlp.shared_experts.down_proj.weight", rows: h, cols: shared)
            } else {
                _ = try ck.matrix(p + "mlp.gate_proj.weight", rows: c.intermediateSize, cols: h)
                _ = try ck.matrix(p + "mlp.up_proj.weight", rows: c.intermediateSize, cols: h)
                _ = try ck.matrix(p + "mlp.down_proj.weight", rows: h, cols: c.intermediateSize)
            }
        }
    }

    @Test(.enabled(if: fixtureCases.allSatisfy(fixtureExists)))
    func configsAsDocumented() throws {
        func config(_ name: String) throws -> ModelConfig {
            try ModelConfig(contentsOf: fixtureModels.appendingPathComponent(name).appendingPathComponent("config.json"))
        }
        let grouped = try config("v3-sigmoid-grouped")
        #expect(grouped.architecture == .deepseekV3 && grouped.scoringFunc == .sigmoid && grouped.topkMethod == .noauxTC)
        #expect(grouped.nGroup == 4 && grouped.topkGroup == 2 && grouped.qLoraRank == 48 && grouped.rope.yarn == nil)

        let yarn = try config("v3-yarn-sharded")
        let y = try #require(yarn.rope.yarn)
        #expect(y.factor == 4 && y.originalMaxPositionEmbeddings == 64 && y.mscale == 1 && y.mscaleAllDim == 1)
        #expect(yarn.numHiddenLayers == 2 && yarn.torchDtype == "float32")

        let v2 = try config("v2-softmax-plainq")
        #expect(v2.architecture == .deepseekV2 && v2.scoringFunc == .softmax && v2.topkMethod == .groupLimitedGreedy)
        #expect(v2.qLoraRank == nil && !v2.normTopkProb && v2.routedScalingFactor == 16)

        let fp8 = try config("v3-fp8")
        #expect(fp8.fp8BlockSize == ModelConfig.BlockSize(rows: 16, cols: 16) && fp8.qLoraRank == 40)
        #expect((0..<3).map(fp8.isMoELayer) == [false, true, true])
    }

    @Test(.enabled(if: fixtureExists("v3-fp8")))
    func fp8RaggedTilesDecode() throws {
        let ck = try Checkpoint(directory: fixtureModels.appendingPathComponent("v3-fp8"))
        let name = "model.layers.0.self_attn.kv_a_proj_with_mqa.weight"  // 40 rows in 16-row tiles
        let info = try ck.info(name)
        #expect(info.dtype == .f8E4M3 && info.shape[0] == 40)
        let m = try ck.matrix(name, rows: 40, cols: 64)
        #expect(m.isFP8)
        // Recompute every element from the raw bytes: fp8 × the scale of its 16 × 16 tile.
        let scaleInfo = try ck.info(name + "_scale_inv")
        #expect(scaleInfo.shape == [3, 4])
        let file = try SafetensorsFile(url: fixtureModels.appendingPathComponent("v3-fp8/model.safetensors"))
        let q = Array(try file.bytes(name))
        let scaleBytes = try file.bytes(name + "_scale_inv")
        let s = (0..<12).map { scaleBytes.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        let f = m.floats
        var mismatches = 0
        for r in 0..<40 {
            for c in 0..<64 where f[r * 64 + c] != e4m3Reference(q[r * 64 + c]) * s[(r / 16) * 4 + c / 16] { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }
}
