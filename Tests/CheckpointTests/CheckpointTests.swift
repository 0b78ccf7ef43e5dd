import Foundation
import Kernels
import Testing
@testable import Checkpoint

extension WeightMatrix {
    /// All elements widened to f32, row-major.
    var floats: [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        out.withUnsafeMutableBufferPointer { buf in
            for r in 0..<rows { copyRow(r, to: buf.baseAddress! + r * cols) }
        }
        return out
    }

    var isBF16: Bool { if case .bf16 = storage { true } else { false } }
    var isF32: Bool { if case .f32 = storage { true } else { false } }
    var isFP8: Bool { if case .fp8 = storage { true } else { false } }
}

func fp8Config(block: ModelConfig.BlockSize = .init(rows: 2, cols: 4)) -> ModelConfig {
    var c = ModelConfig(defaultsFor: .deepseekV3)
    c.fp8BlockSize = block
    return c
}

@Suite struct SafetensorsRoundTrip {
    @Test func f32bf16f16() throws {
        try withTemporaryDirectory { dir in
            let values: [Float] = [1, -2, 0.5, 3.25, -0.125, 1024]  // exact in every format
            let w = SafetensorsWriter()
            try w.add("a.f32", shape: [2, 3], floats: values, as: .f32)
            try w.add("b.bf16", shape: [3, 2], floats: values, as: .bf16)
            try w.add("c.f16", shape: [1, 6], floats: values, as: .f16)
            try w.add("d.norm", shape: [6], floats: values, as: .bf16)
            try w.add("e.bias", shape: [6], floats: values, as: .f16)
            try w.write(to: dir.appendingPathComponent("model.safetensors"))
            try writeConfig(to: dir)

            let ck = try Checkpoint(directory: dir)
            #expect(ck.tensorNames == ["a.f32", "b.bf16", "c.f16", "d.norm", "e.bias"])
            #expect(ck.contains("b.bf16") && !ck.contains("z"))
            #expect(try ck.info("b.bf16") == TensorInfo(name: "b.bf16", dtype: .bf16, shape: [3, 2], file: "model.safetensors", byteCount: 12))

            let a = try ck.matrix("a.f32", rows: 2, cols: 3)
            let b = try ck.matrix("b.bf16", rows: 3, cols: 2)
            let c = try ck.matrix("c.f16", rows: 1, cols: 6)
            #expect(a.isF32 && a.floats == values)
            #expect(b.isBF16 && b.floats == values)
            #expect(c.isF32 && c.floats == values)
            #expect(try ck.vector("d.norm", count: 6) == values)
            #expect(try ck.vector("e.bias", count: 6) == values)
        }
    }

    @Test func zeroCopyAndResidentBytes() throws {
        try withTemporaryDirectory { dir in
            let w = SafetensorsWriter()
            try w.add("w.bf16", shape: [4, 8], floats: (0..<32).map(Float.init), as: .bf16)
            try w.add("w.f16", shape: [2, 2], floats: [1, 2, 3, 4], as: .f16)
            try w.add("w.f8", dtype: .f8E4M3, shape: [2, 4], bytes: [UInt8](repeating: 0x38, count: 8))
            try w.add("w.f8_scale_inv", shape: [1, 1], floats: [2], as: .f32)
            try w.add("n", shape: [3], floats: [1, 2, 3], as: .f32)
            try w.write(to: dir.appendingPathComponent("model.safetensors"))
            let ck = try Checkpoint(directory: dir, config: fp8Config())
            #expect(ck.residentBytes == 0)

            let m = try ck.matrix("w.bf16", rows: 4, cols: 8)
            // Points into the mapping, owned by the mapped file.
            #expect(m.owner is SafetensorsFile)
            #expect(ck.loadStats == .init(tensorsLoaded: 1, mappedBytes: 64, allocatedBytes: 0))
            _ = try ck.matrix("w.bf16", rows: 4, cols: 8)  // the same mapped bytes: counted once
            #expect(ck.loadStats.mappedBytes == 64 && ck.loadStats.tensorsLoaded == 2)
            _ = try ck.matrix("w.f16", rows: 2, cols: 2)
            // FP8 stays FP8 in the mapping; only its one f32 scale is allocated.
            let f8 = try ck.matrix("w.f8", rows: 2, cols: 4)
            #expect(f8.isFP8 && f8.byteCount == 8)
            _ = try ck.vector("n", count: 3)
            #expect(ck.loadStats.mappedBytes == 64 + 8)
            #expect(ck.loadStats.allocatedBytes == 16 + 4 + 12)
            #expect(ck.residentBytes == 64 + 8 + 16 + 4 + 12)
            #expect(try ck.matrix("w.f8", rows: 2, cols: 4).floats == [Float](repeating: 2, count: 8))
        }
    }

    @Test func writerLayout() throws {
        try withTemporaryDirectory { dir in
            let w = SafetensorsWriter()
            try w.add("z.u8", dtype: .u8, shape: [3], bytes: [1, 2, 3])
            try w.add("y.bf16", shape: [3], floats: [1, 2, 3], as: .bf16)
            try w.add("x.f32", shape: [1], floats: [7], as: .f32)
            let url = dir.appendingPathComponent("t.safetensors")
            try w.write(to: url)
            let data = try Data(contentsOf: url)
            let n = Int(data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
            #expect((8 + n) % 8 == 0)
            let header = String(decoding: data[8..<(8 + n)], as: UTF8.self)
            #expect(header.hasPrefix(#"{"__metadata__":{"format":"pt"},"x.f32":"#))
            #expect(header.contains(#""data_offsets":[0,4]"#) && header.contains(#""dtype":"BF16""#))
            #expect(data.count == 8 + n + 4 + 6 + 3)

            let f = try SafetensorsFile(url: url)
            #expect(f.metadata == ["format": "pt"])
            #expect(f.tensorNames == ["x.f32", "y.bf16", "z.u8"])
            #expect(Array(try f.bytes("z.u8")) == [1, 2, 3])
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent(".t.safetensors.partial").path))

            #expect(throws: CheckpointError.invalidTensor("x.f32", reason: "declared twice")) {
                try w.add("x.f32", shape: [1], floats: [1], as: .f32)
            }
            let wrongCount = errorText { try w.add("q", dtype: .bf16, shape: [2], bytes: [1, 2, 3]) }
            #expect(wrongCount.contains("q") && wrongCount.contains("3 bytes"))
        }
    }

    @Test func streamingFillIsCalledInDeclarationOrder() throws {
        try withTemporaryDirectory { dir in
            let w = SafetensorsWriter()
            var calls: [String] = []
            try w.add("b.small", dtype: .bf16, shape: [2]) { buf in
                calls.append("b.small")
                buf.bindMemory(to: UInt16.self).initialize(repeating: 0x3F80)  // 1.0
            }
            try w.add("a.big", dtype: .f32, shape: [1000, 3]) { buf in
                calls.append("a.big")
                #expect(buf.count == 12_000 && Int(bitPattern: buf.baseAddress) % 4 == 0)
                let f = buf.bindMemory(to: Float.self)
                for i in f.indices { f[i] = Float(i) }
            }
            try w.writeCheckpoint(to: dir, maxShardBytes: 1 << 20)
            #expect(calls == ["b.small", "a.big"])
            try writeConfig(to: dir)
            let ck = try Checkpoint(directory: dir)
            #expect(try ck.matrix("a.big", rows: 1000, cols: 3).floats == (0..<3000).map(Float.init))
            #expect(try ck.vector("b.small", count: 2) == [1, 1])
        }
    }
}

@Suite struct ShardedCheckpoints {
    /// Four 2 × 4 F32 tensors of 32 bytes in shards of at most 64 bytes: two shards.
    func writeSharded(_ dir: URL) throws -> [String] {
        let w = SafetensorsWriter()
        for i in 0..<4 {
            try w.add("model.layers.\(i).mlp.down_proj.weight", shape: [2, 4], floats: (0..<8).map { Float(i * 10 + $0) }, as: .f32)
        }
        try writeConfig(to: dir)
        return try w.writeCheckpoint(to: dir, maxShardBytes: 64)
    }

    @Test func indexAndLazyMapping() throws {
        try withTemporaryDirectory { dir in
            let written = try writeSharded(dir)
            #expect(written == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"])
            let index = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("model.safetensors.index.json"))) as! [String: Any]
            #expect((index["metadata"] as? [String: Any])?["total_size"] as? Int == 128)
            #expect((index["weight_map"] as? [String: String])?["model.layers.3.mlp.down_proj.weight"] == "model-00002-of-00002.safetensors")

            let ck = try Checkpoint(directory: dir)
            #expect(ck.tensorNames.count == 4 && ck.contains("model.layers.2.mlp.down_proj.weight"))
            #expect(ck.openedFiles.isEmpty)
            let m = try ck.matrix("model.layers.3.mlp.down_proj.weight", rows: 2, cols: 4)
            #expect(m.floats == (30..<38).map(Float.init))
            #expect(ck.openedFiles == ["model-00002-of-00002.safetensors"])
            #expect(try ck.info("model.layers.0.mlp.down_proj.weight").file == "model-00001-of-00002.safetensors")
            #expect(ck.openedFiles.count == 2)

            // A later single-file write replaces the sharded layout.
            let w = SafetensorsWriter()
            try w.add("only", shape: [1], floats: [1], as: .f32)
            try w.writeCheckpoint(to: dir, maxShardBytes: 64)
            let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
            #expect(files == ["config.json", "model.safetensors"])
        }
    }

    @Test func missingShardFile() throws {
        try withTemporaryDirectory { dir in
            _ = try writeSharded(dir)
            try FileManager.default.removeItem(at: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
            let text = errorText { _ = try Checkpoint(directory: dir) }
            #expect(text.contains("model-00002-of-00002.safetensors") && text.contains("missing"))
            #expect(text.contains("model.safetensors.index.json") && text.contains("model.layers.2.mlp.down_proj.weight"))
        }
    }

    @Test func missingTensorNamesWhereItShouldBe() throws {
        try withTemporaryDirectory { dir in
            _ = try writeSharded(dir)
            // The index claims a tensor the shard does not have.
            let url = dir.appendingPathComponent("model.safetensors.index.json")
            var index = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            var map = index["weight_map"] as! [String: String]
            map["model.layers.3.mlp.experts.17.up_proj.weight"] = "model-00002-of-00002.safetensors"
            index["weight_map"] = map
            try JSONSerialization.data(withJSONObject: index).write(to: url)

            let ck = try Checkpoint(directory: dir)
            let listed = errorText { _ = try ck.matrix("model.layers.3.mlp.experts.17.up_proj.weight", rows: 2, cols: 4) }
            #expect(listed == "tensor model.layers.3.mlp.experts.17.up_proj.weight missing from model-00002-of-00002.safetensors")
            let unlisted = errorText { _ = try ck.matrix("model.layers.9.mlp.gate.weight", rows: 2, cols: 4) }
            #expect(unlisted.contains("model.layers.9.mlp.gate.weight") && unlisted.contains(dir.path))
            #expect(unlisted.contains("model.safetensors.index.json"))
        }
    }

    @Test func truncatedShardFailsAtAccessNotSIGBUS() throws {
        try withTemporaryDirectory { dir in
            _ = try writeSharded(dir)
            let shard = dir.appendingPathComponent("model-00002-of-00002.safetensors")
            let size = try FileManager.default.attributesOfItem(atPath: shard.path)[.size] as! Int
            #expect(truncate(shard.path, off_t(size - 5)) == 0)
            let ck = try Checkpoint(directory: dir)  // shards are opened lazily
            let text = errorText { _ = try ck.matrix("model.layers.3.mlp.down_proj.weight", rows: 2, cols: 4) }
            #expect(text.contains("model.layers.3.mlp.down_proj.weight") && text.contains("model-00002-of-00002.safetensors"))
            #expect(text.contains("run past the end of the file (59 bytes of data)"))
        }
    }
}

@Suite struct BadCheckpoints {
    /// A directory with a default config.json and `file` as model.safetensors; returns the error of opening
    /// it and then calling `load`.
    func failure(_ file: Data, config: ModelConfig = fp8Config(), load: (Checkpoint) throws -> Void = { _ in }) throws -> String {
        try withTemporaryDirectory { dir in
            try writeConfig(config, to: dir)
            try file.write(to: dir.appendingPathComponent("model.safetensors"))
            return errorText { try load(Checkpoint(directory: dir)) }
        }
    }

    func written(_ build: (SafetensorsWriter) throws -> Void) throws -> Data {
        try withTemporaryDirectory { dir in
            let w = SafetensorsWriter()
            try build(w)
            let url = dir.appendingPathComponent("x.safetensors")
            try w.write(to: url)
            return try Data(contentsOf: url)
        }
    }

    @Test func truncatedFile() throws {
        let full = try written { w in
            try w.add("model.embed_tokens.weight", shape: [4, 4], floats: [Float](repeating: 1, count: 16), as: .bf16)
            try w.add("model.layers.3.mlp.experts.17.up_proj.weight", shape: [4, 4], floats: [Float](repeating: 1, count: 16), as: .bf16)
        }
        let text = try failure(full.prefix(full.count - 10))
        #expect(text.contains("model.safetensors"))
        #expect(text.contains("run past the end of the file (54 bytes of data)"))
        #expect(text.hasPrefix("tensor model.layers.3.mlp.experts.17.up_proj.weight in model.safetensors: data_offsets [32, 64]"))
    }

    @Test func wrongShape() throws {
        let file = try written { try $0.add("model.layers.0.self_attn.o_proj.weight", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6], as: .bf16) }
        let text = try failure(file) { _ = try $0.matrix("model.layers.0.self_attn.o_proj.weight", rows: 3, cols: 2) }
        #expect(text == "tensor model.layers.0.self_attn.o_proj.weight in model.safetensors has shape [2, 3], expected [3, 2] (from config.json)")
        let vector = try failure(file) { _ = try $0.vector("model.layers.0.self_attn.o_proj.weight", count: 6) }
        #expect(vector.contains("expected [6]"))
    }

    @Test func missingTensorInSingleFile() throws {
        let file = try written { try $0.add("a", shape: [1], floats: [1], as: .f32) }
        let text = try failure(file) { _ = try $0.matrix("model.norm.weight", rows: 1, cols: 1) }
        #expect(text.hasPrefix("tensor model.norm.weight missing from ") && text.hasSuffix("/model.safetensors"))
    }

    @Test func badHeaderJSON() throws {
        let text = try failure(rawSafetensors(header: #"{"a": {"dtype": "F32", "#))
        #expect(text.contains("model.safetensors") && text.contains("not valid JSON"))
        let notObject = try failure(rawSafetensors(header: "[1, 2]"))
        #expect(notObject.contains("model.safetensors") && notObject.contains("not an object"))
    }

    @Test func headerLengthLargerThanFile() throws {
        let text = try failure(rawSafetensors(header: "{}", declaredLength: 1_000_000))
        #expect(text.contains("model.safetensors") && text.contains("header length 1000000 runs past the end of the file (10 bytes)"))
        let short = try failure(Data([1, 2, 3]))
        #expect(short.contains("model.safetensors") && short.contains("3 bytes"))
    }

    @Test func offsetsPastTheEnd() throws {
        let header = #"{"model.layers.1.mlp.up_proj.weight": {"dtype": "F32", "shape": [5, 5], "data_offsets": [0, 100]}}"#
        let text = try failure(rawSafetensors(header: header, data: [UInt8](repeating: 0, count: 40)))
        #expect(text == "tensor model.layers.1.mlp.up_proj.weight in model.safetensors: data_offsets [0, 100] run past the end of the file (40 bytes of data)")
        let backwards = #"{"t": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#
        #expect(try failure(rawSafetensors(header: backwards, data: [UInt8](repeating: 0, count: 8))).contains("end before they begin"))
    }

    @Test func dtypeSizeMismatch() throws {
        let header = #"{"model.layers.0.input_layernorm.weight": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 6]}}"#
        let text = try failure(rawSafetensors(header: header, data: [UInt8](repeating: 0, count: 8)))
        #expect(text.contains("model.layers.0.input_layernorm.weight") && text.contains("model.safetensors"))
        #expect(text.contains("dtype BF16 × shape [2, 2] is 8 bytes but data_offsets [0, 6] span 6"))
    }

    @Test func malformedEntries() throws {
        let f64 = try failure(rawSafetensors(header: #"{"t": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}"#, data: [UInt8](repeating: 0, count: 8)))
        #expect(f64.contains("tensor t in model.safetensors") && f64.contains("F64"))
        let noShape = try failure(rawSafetensors(header: #"{"t": {"dtype": "F32", "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0]))
        #expect(noShape.contains("tensor t") && noShape.contains("shape"))
        let noOffsets = try failure(rawSafetensors(header: #"{"t": {"dtype": "F32", "shape": [1]}}"#, data: [0, 0, 0, 0]))
        #expect(noOffsets.contains("tensor t") && noOffsets.contains("data_offsets"))
    }

    @Test func integerTensorsAreNotWeights() throws {
        let file = try written { try $0.add("ids", dtype: .i64, shape: [1, 2], bytes: [UInt8](repeating: 0, count: 16)) }
        let text = try failure(file) { _ = try $0.matrix("ids", rows: 1, cols: 2) }
        #expect(text.contains("ids") && text.contains("I64") && text.contains("model.safetensors"))
        let vector = try failure(file) { _ = try $0.vector("ids", count: 2) }
        #expect(vector.contains("shape [1, 2]"))
    }

    @Test func missingScaleInv() throws {
        let file = try written { try $0.add("model.layers.0.mlp.down_proj.weight", dtype: .f8E4M3, shape: [2, 4], bytes: [UInt8](repeating: 0x38, count: 8)) }
        let text = try failure(file) { _ = try $0.matrix("model.layers.0.mlp.down_proj.weight", rows: 2, cols: 4) }
        #expect(text.contains("model.layers.0.mlp.down_proj.weight_scale_inv") && text.contains("model.safetensors"))
        #expect(text.hasPrefix("tensor model.layers.0.mlp.down_proj.weight is F8_E4M3"))
    }

    @Test func scaleInvWithWrongGrid() throws {
        let file = try written { w in
            try w.add("w", dtype: .f8E4M3, shape: [5, 9], bytes: [UInt8](repeating: 0x38, count: 45))
            try w.add("w_scale_inv", shape: [2, 2], floats: [1, 1, 1, 1], as: .f32)
        }
        // Tiles of 2 × 4 over 5 × 9: a ceil-divided 3 × 3 grid.
        let text = try failure(file) { _ = try $0.matrix("w", rows: 5, cols: 9) }
        #expect(text == "tensor w_scale_inv in model.safetensors has shape [2, 2], expected [3, 3] (from config.json)")
        let noBlock = try failure(file, config: ModelConfig(defaultsFor: .deepseekV3)) { _ = try $0.matrix("w", rows: 5, cols: 9) }
        #expect(noBlock.contains("tensor w in model.safetensors") && noBlock.contains("weight_block_size"))
    }

    @Test func fp8WithBF16ScalesAndRaggedTiles() throws {
        try withTemporaryDirectory { dir in
            // 5 × 9 in 2 × 4 tiles: the last tile row has one row, the last tile column one column.
            var q = [UInt8](repeating: 0x38, count: 45)  // 1.0
            q[44] = 0x3C     // 1.5 at (4, 8)
            q[0] = 0x7E      // 448 at (0, 0)
            q[9 + 5] = 0x01  // 2^-9 at (1, 5)
            let scales: [Float] = [1, 2, 4, 8, 16, 32, 0.5, 0.25, 0.125]
            let w = SafetensorsWriter()
            try w.add("w", dtype: .f8E4M3, shape: [5, 9], bytes: q)
            try w.add("w_scale_inv", shape: [3, 3], floats: scales, as: .bf16)
            try w.writeCheckpoint(to: dir, maxShardBytes: 1 << 20)
            try writeConfig(fp8Config(), to: dir)
            let m = try Checkpoint(directory: dir).matrix("w", rows: 5, cols: 9)
            #expect(m.isFP8)
            let f = m.floats
            #expect(f[0] == 448 && f[1] == 1 && f[4] == 2 && f[8] == 4)
            #expect(f[9 + 5] == 0x1p-8)
            #expect(f[2 * 9 + 8] == 32 && f[3 * 9 + 0] == 8)
            #expect(f[4 * 9 + 0] == 0.5 && f[4 * 9 + 4] == 0.25 && f[44] == 0.1875)
        }
    }

    @Test func directoryProblems() throws {
        try withTemporaryDirectory { dir in
            let noConfig = errorText { _ = try Checkpoint(directory: dir) }
            #expect(noConfig.contains("config.json"))
            try writeConfig(to: dir)
            let noWeights = errorText { _ = try Checkpoint(directory: dir) }
            #expect(noWeights.contains(dir.path) && noWeights.contains("model.safetensors.index.json"))
            try Data("{\"weight_map\": 3}".utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
            let badIndex = errorText { _ = try Checkpoint(directory: dir) }
            #expect(badIndex.contains("model.safetensors.index.json") && badIndex.contains("weight_map"))
        }
    }
}
