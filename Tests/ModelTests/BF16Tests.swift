import Attention
import Checkpoint
import Foundation
import Kernels
import Model
import Testing

/// bf16 checkpoints run on the bf16 kernels (SIMD for one token, oneDNN for several).
/// Their reference is the same weights stored as f32, which run on OpenBLAS — the path
/// the transformers parity tests prove.
@Suite struct BF16Tests {
    /// The fixture's weights rounded to bf16, stored once as BF16 and once as F32.
    static func twins() throws -> (bf16: URL, f32: URL) {
        let source = Fixtures.model("v3-sigmoid-grouped")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-bf16-\(getpid())")
        let dirs = (root.appendingPathComponent("bf16"), root.appendingPathComponent("f32"))
        let file = try SafetensorsFile(url: source.appendingPathComponent("model.safetensors"))
        for (dir, dtype) in [(dirs.0, DType.bf16), (dirs.1, DType.f32)] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for name in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
                try? FileManager.default.removeItem(at: dir.appendingPathComponent(name))
                try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: dir.appendingPathComponent(name))
            }
            let writer = SafetensorsWriter()
            for name in file.tensorNames {
                let info = file.tensors[name]!
                let raw = try file.bytes(name)
                let rounded = (0..<info.elementCount).map { BF16.toFloat(BF16.fromFloat(raw.load(fromByteOffset: $0 * 4, as: Float.self))) }
                try writer.add(name, shape: info.shape, floats: rounded, as: dtype)
            }
            try writer.write(to: dir.appendingPathComponent("model.safetensors"))
        }
        return dirs
    }

    @Test func bf16KernelsMatchF32OnTheSameWeights() throws {
        let (bf16, f32) = try Self.twins()
        let prompt = try Fixtures.reference("v3-sigmoid-grouped").prompt
        let fast = try DeepseekModel(checkpoint: Checkpoint(directory: bf16))
        let exact = try DeepseekModel(checkpoint: Checkpoint(directory: f32))
        let vocab = fast.config.vocabSize

        // Token by token: every product has one token, f32 activations: agreement to f32 rounding.
        let stepwise = try [fast, exact].map { model in
            let cache = model.makeCache()
            return try prompt.flatMap { token in
                try model.forward(tokens: [token], batch: AttentionBatch(slices: [.init(cache: cache, first: 0, count: 1)]), logitRows: [0])
            }
        }
        let decodeGap = zip(stepwise[0], stepwise[1]).map { abs($0 - $1) }.max()!
        #expect(decodeGap <= 1e-4, "single-token bf16 path vs f32: \(decodeGap)")

        // The whole prompt at once: oneDNN rounds activations to bf16 too.
        let cache = fast.makeCache()
        let prefill = try fast.forward(tokens: prompt, batch: AttentionBatch(slices: [.init(cache: cache, first: 0, count: prompt.count)]),
                                       logitRows: Array(prompt.indices))
        let scale = stepwise[1].map(abs).max()!
        let prefillGap = zip(prefill, stepwise[1]).map { abs($0 - $1) }.max()!
        #expect(prefillGap <= 0.02 * scale, "prefill bf16 path vs f32: \(prefillGap) (logit scale \(scale))")
        for t in prompt.indices {
            let a = prefill[t * vocab ..< (t + 1) * vocab], b = stepwise[1][t * vocab ..< (t + 1) * vocab]
            #expect(a.indices.max { a[$0] < a[$1] }! - a.startIndex == b.indices.max { b[$0] < b[$1] }! - b.startIndex)
        }
    }
}
