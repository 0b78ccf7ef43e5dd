import Checkpoint
import Foundation
import Planner
import Testing

/// The capacity planner on DeepSeek-V3's published config.
@Suite struct PlannerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func config(_ name: String) throws -> ModelConfig {
        try ModelConfig(contentsOf: root.appendingPathComponent("configs/models/\(name).json"))
    }

    static let gib = Double(1 << 30)

    func spec(nodes: Int, memory: Double = 512 * PlannerTests.gib, link: Double = 25e9 / 8, context: Int = 32768, concurrent: Int = 64) -> ClusterSpec {
        ClusterSpec(nodes: nodes, nodeMemory: memory, nodeBandwidth: 200e9, linkRate: link, context: context, concurrent: concurrent)
    }

    @Test(arguments: ["deepseek-v3", "deepseek-r1"])
    func countsThePublishedParameters(_ name: String) throws {
        let f = ModelFootprint(config: try Self.config(name), weights: .fp8)
        // 671 B without the MTP layer (685 B with it), as DeepSeek publishes.
        #expect(abs(Double(f.parameters) / 671e9 - 1) < 0.005, "\(f.parameters)")
        #expect(f.moeLayers == 58 && f.routedExperts == 256 && f.expertsPerToken == 8)
        // FP8: a byte per routed weight plus one f32 scale per 128 × 128 tile.
        #expect(f.expertBytes == 3 * (2048 * 7168 + 16 * 56 * 4))
        #expect(f.cacheBytesPerPosition == 61 * 576 * 4)
        // MLA's transposed key halves: 128 heads × [512 × 128] E4M3, one scale per 128 × 128
        // tile, memory on every attention rank but not bytes read on top of the checkpoint's.
        #expect(f.keyFoldBytes == 128 * (512 * 128 + 4 * 4))
        #expect(f.attentionRankBytes - f.attentionReadBytes == 61 * f.keyFoldBytes)
        let bf16 = ModelFootprint(config: try Self.config(name), weights: .bf16)
        #expect(bf16.expertBytes == 3 * 2048 * 7168 * 2 && bf16.parameters == f.parameters)
    }

    @Test func countsThePublishedActiveParameters() throws {
        let c = try Self.config("deepseek-v3")
        let f = ModelFootprint(config: c, weights: .fp8)
        // 37 B activated per token, as DeepSeek publishes, with the embedding and LM head
        // (0.9 B each), which `activeLayerParameters` leaves out.
        let withEnds = f.activeLayerParameters + 2 * c.vocabSize * c.hiddenSize
        #expect(abs(Double(withEnds) / 37e9 - 1) < 0.02, "\(withEnds)")
        // Only the routed experts a token does not choose separate it from the layers' total.
        let layers = f.parameters - 2 * c.vocabSize * c.hiddenSize - c.hiddenSize
        #expect(layers - f.activeLayerParameters == f.moeLayers * (f.routedExperts - f.expertsPerToken) * 3 * c.moeIntermediateSize * c.hiddenSize)
    }

    @Test func refusesAClusterTooSmallWithTheShortfall() throws {
        let f = ModelFootprint(config: try Self.config("deepseek-v3"), weights: .fp8)
        let small = spec(nodes: 2, memory: 256 * Self.gib, context: 4096, concurrent: 8)
        #expect(throws: CapacityPlan.Shortfall.self) { try CapacityPlan.best(for: small, footprint: f, model: .defaults) }
        do {
            _ = try CapacityPlan.best(for: small, footprint: f, model: .defaults)
        } catch {
            // Two nodes hold 2 × 248 GiB usable; the routed experts alone need ~609 GiB.
            #expect(error.bytes > 100 * Self.gib && error.description.contains("short by"), "\(error)")
        }
    }

    @Test func placesEveryExpertOnceWithinEachNode() throws {
        let f = ModelFootprint(config: try Self.config("deepseek-v3"), weights: .fp8)
        for nodes in [2, 8, 16, 32] {
            let plan = try CapacityPlan.best(for: spec(nodes: nodes), footprint: f, model: .defaults)
            let experts = plan.nodes.flatMap { $0.experts.flatMap { Array($0) } }
            #expect(experts == Array(0..<256), "\(nodes) nodes")
            for n in plan.nodes {
                #expect(n.weightBytes + n.cacheBytes + n.freeBytes <= plan.spec.nodeMemory - plan.spec.reservedPerNode + 1)
                #expect(n.freeBytes >= 0)
            }
            #expect(plan.nodes.filter(\.router).count == 1 && plan.nodes.filter(\.attention).count == plan.attentionRanks)
        }
    }

    /// The latent cache's rows are padded to 64-value blocks, as `LatentCache` stores them:
    /// bench-mid's 256 + 32 values take 320, DeepSeek-V3's 512 + 64 exactly 576.
    @Test func countsTheCacheAsStored() throws {
        let mid = try Self.config("bench-mid")
        #expect(mid.latentCacheRowFloats == 320)
        #expect(ModelFootprint(config: mid, weights: .bf16).cacheBytesPerPosition == mid.numHiddenLayers * 320 * 4)
        #expect(try Self.config("deepseek-v3").latentCacheRowFloats == 576)
    }

    @Test func predictsFromBytesAndRates() throws {
        let f = ModelFootprint(config: try Self.config("deepseek-v3"), weights: .fp8)
        let plan = try CapacityPlan(spec: spec(nodes: 8, concurrent: 1), footprint: f, model: .defaults, attentionRanks: 1)
        // One sequence: the attention rank streams its weights and half a context of cache.
        let attention = (Double(f.attentionReadBytes) + 32768 / 2 * Double(f.cacheBytesPerPosition)) / (200e9 * 0.85) + 61 * 100e-6
        #expect(abs(plan.prediction.attentionSeconds - attention) < 1e-9)
        // It activates exactly 8 experts per layer; the busiest node holds a share of them.
        let busiest = Double(plan.nodes.map(\.expertCount).max()!) / 256
        let experts = 8 * busiest * Double(f.expertBytes * 58) / (200e9 * 0.85)
        #expect(abs(plan.prediction.expertSeconds - experts) < 1e-9)
        // Per layer, one row to each of the 7 other nodes (at most one per node), with its
        // routing, and its sum back: f32 through a 25 Gbit/s link, plus four hops of 60 µs.
        let bytes = 7 * (2 * 7168 * 4 + 2 * 8 * 4.0)
        #expect(abs(plan.prediction.exchangeSeconds - 58 * (4 * 60e-6 + bytes / (25e9 / 8 * 0.9))) < 1e-9)

        let slowLinks = try CapacityPlan(spec: spec(nodes: 8, link: 1e9 / 8, concurrent: 1), footprint: f, model: .defaults, attentionRanks: 1)
        #expect(slowLinks.tokensPerSecond < plan.tokensPerSecond)
    }

    @Test func readsSizesAndRatesAsOperatorsWriteThem() throws {
        #expect(try Quantity.bytes("512GiB") == 512 * Self.gib)
        #expect(try Quantity.bytes("1TB") == 1e12)
        #expect(try Quantity.bytes("64G") == 64 * Self.gib)
        #expect(try Quantity.bytesPerSecond("200GB/s") == 200e9)
        #expect(try Quantity.linkRate("25gbit") == 25e9 / 8)
        #expect(try Quantity.linkRate("100Gbps") == 100e9 / 8)
        #expect(throws: Quantity.ParseError.self) { try Quantity.bytes("lots") }
        #expect(throws: Quantity.ParseError.self) { try Quantity.linkRate("25GB") }
    }
}
