import Attention
import Model

/// What the generator needs of a model: one forward step over a batch of sequences.
public protocol StepModel: AnyObject {
    var vocabSize: Int { get }
    func makeCache(capacity: Int) -> LatentCache
    /// Extends each slice's sequence by its tokens; returns logits of `logitRows`, `[rows × vocab]`.
    func forward(tokens: [Int], batch: AttentionBatch, logitRows: [Int]) -> [Float]
}

extension DeepseekModel: StepModel {
    public var vocabSize: Int { config.vocabSize }
}
