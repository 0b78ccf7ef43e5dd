import Checkpoint

/// How routed and attention weights are stored: DeepSeek's FP8 release (E4M3, one f32
/// scale per 128 × 128 tile; embeddings, LM head, norms and gates stay bf16) or bf16.
public enum WeightFormat: String, Sendable, CaseIterable {
    case fp8, bf16
}

/// Bytes of a DeepSeek model by where they live on a cluster: what every attention rank
/// holds, what the router holds, one routed expert, and the latent cache per position.
/// Counts follow the checkpoint's tensors; the MTP layer is not loaded and not counted.
public struct ModelFootprint: Sendable, Equatable {
    /// Embeddings, attention, dense MLPs, shared experts, norms and LM head: one attention
    /// rank's weights, plus the copy of `kv_b_proj`'s key half that MLA keeps transposed.
    public var attentionRankBytes: Int
    /// Per layer, MLA's transposed copy of `kv_b_proj`'s key half: memory an attention rank
    /// holds on top of the checkpoint, but not bytes a step reads on top of it (the copy is
    /// read in place of the original half).
    public var keyFoldBytes: Int
    /// What one decode step reads of an attention rank's weights (the LM head aside).
    public var attentionReadBytes: Int { attentionRankBytes - layers * keyFoldBytes }
    /// The MoE gates, held as f32 by the router.
    public var routerBytes: Int
    /// One routed expert of one layer (gate, up and down projections).
    public var expertBytes: Int
    public var layers: Int
    public var moeLayers: Int
    public var routedExperts: Int
    public var expertsPerToken: Int
    public var hiddenSize: Int
    /// Latent cache per position over all layers (`ModelConfig.latentCacheRowFloats` f32
    /// values per layer, as `LatentCache` stores them).
    public var cacheBytesPerPosition: Int
    /// Weights of the model (MTP layer excluded), for checking against published totals.
    public var parameters: Int
    /// Weights one token multiplies in the decoder layers: attention, dense MLPs and, per MoE
    /// layer, the gate, the shared experts and `expertsPerToken` routed experts (norm weights
    /// included, 0.01 %). Not the embedding, a lookup, nor the LM head, which prefill runs for
    /// the last token only: a prompt token costs about 2 × this many FLOP.
    public var activeLayerParameters: Int

    /// Every routed expert of every MoE layer.
    public var routedBytes: Int { expertBytes * routedExperts * moeLayers }

    public init(config c: ModelConfig, weights: WeightFormat) {
        /// A projection of the checkpoint: (parameters, bytes as stored).
        func matrix(_ rows: Int, _ cols: Int, _ format: WeightFormat) -> (parameters: Int, bytes: Int) {
            switch format {
            case .bf16: (rows * cols, rows * cols * 2)
            case .fp8: (rows * cols, rows * cols + ((rows + 127) / 128) * ((cols + 127) / 128) * 4)
            }
        }
        func sum(_ parts: [(parameters: Int, bytes: Int)]) -> (parameters: Int, bytes: Int) {
            parts.reduce((0, 0)) { ($0.0 + $1.parameters, $0.1 + $1.bytes) }
        }
        func norm(_ n: Int) -> (parameters: Int, bytes: Int) { (n, n * 2) }
        let h = c.hiddenSize, heads = c.numAttentionHeads, w = weights
        let query = c.qLoraRank.map { q in [matrix(q, h, w), norm(q), matrix(heads * c.qkHeadDim, q, w)] }
            ?? [matrix(heads * c.qkHeadDim, h, w)]
        let attention = sum(query + [
            matrix(c.kvLoraRank + c.qkRopeHeadDim, h, w), norm(c.kvLoraRank),
            matrix(heads * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank, w), matrix(h, heads * c.vHeadDim, w),
            norm(h), norm(h),
        ])
        // Each head's key half of `kv_b_proj`, transposed at load (`[kv_lora_rank × nope]`).
        keyFoldBytes = heads * matrix(c.kvLoraRank, c.qkNopeHeadDim, w).bytes
        let moeLayers = c.moeLayers.count
        let denseLayers = c.numHiddenLayers - moeLayers
        let denseMLP = sum(Array(repeating: matrix(c.intermediateSize, h, w), count: 3))
        let shared = sum(Array(repeating: matrix(c.moeIntermediateSize * c.nSharedExperts, h, w), count: c.nSharedExperts > 0 ? 3 : 0))
        let expert = sum(Array(repeating: matrix(c.moeIntermediateSize, h, w), count: 3))
        let gate = matrix(c.nRoutedExperts, h, .bf16)
        let embeddings = sum([matrix(c.vocabSize, h, .bf16), c.tieWordEmbeddings ? (0, 0) : matrix(c.vocabSize, h, .bf16), norm(h)])

        attentionRankBytes = embeddings.bytes + c.numHiddenLayers * (attention.bytes + keyFoldBytes) + denseLayers * denseMLP.bytes
            + moeLayers * shared.bytes
        routerBytes = moeLayers * gate.parameters * 4
        expertBytes = expert.bytes
        layers = c.numHiddenLayers
        self.moeLayers = moeLayers
        routedExperts = c.nRoutedExperts
        expertsPerToken = c.numExpertsPerTok
        hiddenSize = h
        cacheBytesPerPosition = c.numHiddenLayers * c.latentCacheRowFloats * 4
        parameters = embeddings.parameters + c.numHiddenLayers * attention.parameters + denseLayers * denseMLP.parameters
            + moeLayers * (shared.parameters + gate.parameters + c.nRoutedExperts * expert.parameters)
        activeLayerParameters = c.numHiddenLayers * attention.parameters + denseLayers * denseMLP.parameters
            + moeLayers * (shared.parameters + gate.parameters + c.numExpertsPerTok * expert.parameters)
    }
}
