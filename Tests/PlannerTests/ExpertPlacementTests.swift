import Cluster
import ExpertLoad
import Foundation
import Planner
import Testing

/// `conclave plan-placement`'s algorithm (DeepSeek's EPLB) on small loads worked by hand.
@Suite struct ExpertPlacementTests {
    /// 8 experts on 2 expert ranks with 2 redundant: expert 0 (50 tokens) gets a second replica,
    /// then expert 1 (20: expert 0 may not have three replicas on two ranks). Replicas of 25, 25,
    /// 12, 10, 10, 8, 5, 3, 1, 1 packed heaviest first onto the lighter rank with room that lacks
    /// the expert: rank 0 holds 0, 2, 1, 5, 7 (25 + 12 + 10 + 3 + 1 = 51), rank 1 holds 0, 1, 3,
    /// 4, 6 (25 + 10 + 8 + 5 + 1 = 49): balancedness 50/51. The default split (0-3: 90, 4-7: 10) has 50/90.
    @Test func globalPlanMatchesTheHandComputedOne() throws {
        let placement = try ExpertPlacement(.init(routedExperts: 8, expertRanks: 2, redundant: 2))
        #expect(placement.policy == .global && placement.request.slotsPerRank == 5)
        let plan = placement.plan(loads: [50, 20, 12, 8, 5, 3, 1, 1], layer: 3)
        #expect(plan.layer == 3)
        #expect(plan.replicas == [2, 2, 1, 1, 1, 1, 1, 1])
        #expect(plan.experts == [[0, 1, 2, 5, 7], [0, 1, 3, 4, 6]])
        #expect(plan.load == [51, 49])
        #expect(plan.balancedness == 50.0 / 51)
        #expect(plan.defaultLoad == [90, 10] && plan.defaultBalancedness == 50.0 / 90)
    }

    /// 8 experts in 4 groups of 2 ({0,1}: 40, {2,3}: 10, {4,5}: 40, {6,7}: 10 tokens), 4 expert
    /// ranks on 2 nodes, 4 redundant. Hierarchical: groups 0 and 1 on node 0, 2 and 3 on node 1;
    /// node 0 replicates experts 0 and 1, node 1 experts 4 and 5; ranks hold {0,1,2} 25, {0,1,3}
    /// 25, {4,5,6} 26, {4,5,7} 24: balancedness 25/26. Global (one node): expert 0 three times,
    /// 4 and 5 twice; {0,4,6} 26, {0,2,4} 25, {0,3,5} 25, {1,5,7} 24. Default split: 25/40.
    @Test func hierarchicalPlanKeepsGroupsOnANode() throws {
        let loads: [Double] = [30, 10, 5, 5, 20, 20, 6, 4]
        let hierarchical = try ExpertPlacement(.init(routedExperts: 8, expertRanks: 4, redundant: 4, groups: 4, nodes: 2))
        #expect(hierarchical.policy == .hierarchical)
        let h = hierarchical.plan(loads: loads, layer: 1)
        #expect(h.experts == [[0, 1, 2], [0, 1, 3], [4, 5, 6], [4, 5, 7]])
        #expect(h.replicas == [2, 2, 1, 1, 2, 2, 1, 1])
        #expect(h.load == [25, 25, 26, 24] && h.balancedness == 25.0 / 26)
        #expect(h.defaultBalancedness == 25.0 / 40)

        let global = try ExpertPlacement(.init(routedExperts: 8, expertRanks: 4, redundant: 4, groups: 4, nodes: 1))
        #expect(global.policy == .global)
        let g = global.plan(loads: loads, layer: 1)
        #expect(g.replicas == [3, 1, 1, 1, 2, 2, 1, 1])
        #expect(g.experts == [[0, 4, 6], [0, 2, 4], [0, 3, 5], [1, 5, 7]])
        #expect(g.load == [26, 25, 25, 24])
        // Groups that do not divide among the nodes: EPLB's global policy.
        #expect(try ExpertPlacement(.init(routedExperts: 8, expertRanks: 4, redundant: 4, groups: 1, nodes: 2)).policy == .global)
    }

    /// Every plan holds each expert at least once per layer, no expert twice on a rank, the same
    /// number of replicas on every rank, and replicas as counted; uneven loads improve.
    @Test(arguments: [(64, 4, 8, 8, 2), (64, 6, 8, 8, 1), (16, 3, 2, 4, 1), (16, 4, 0, 4, 2), (256, 8, 32, 8, 2)])
    func plansAreWellFormed(_ experts: Int, _ ranks: Int, _ redundant: Int, _ groups: Int, _ nodes: Int) throws {
        let placement = try ExpertPlacement(.init(routedExperts: experts, expertRanks: ranks, redundant: redundant, groups: groups, nodes: nodes))
        // Zipf-like load over a shuffled order, deterministic.
        let loads = (0..<experts).map { e in 1000 / Double(((e * 37) % experts) + 1) }
        let plan = placement.plan(loads: loads, layer: 1)
        #expect(plan.experts.allSatisfy { $0.count == (experts + redundant) / ranks && Set($0).count == $0.count })
        var held = [Int](repeating: 0, count: experts)
        for ids in plan.experts { for e in ids { held[e] += 1 } }
        #expect(held == plan.replicas && held.allSatisfy { $0 >= 1 } && held.reduce(0, +) == experts + redundant)
        #expect(abs(plan.load.reduce(0, +) - loads.reduce(0, +)) < 1e-6)
        #expect(plan.balancedness >= plan.defaultBalancedness, "\(plan.balancedness) < \(plan.defaultBalancedness)")
    }

    @Test func refusesWhatCannotBePlaced() {
        func error(_ r: ExpertPlacement.Request) -> String {
            do {
                _ = try ExpertPlacement(r)
                return ""
            } catch {
                return error.description
            }
        }
        #expect(error(.init(routedExperts: 64, expertRanks: 6, redundant: 4)).contains("64 experts + 4 redundant = 68 replicas do not divide over 6 expert ranks (each holds the same number); use --redundant 2 or 8"))
        #expect(error(.init(routedExperts: 8, expertRanks: 2, redundant: 10)).contains("at most 8 here"))
        #expect(error(.init(routedExperts: 8, expertRanks: 4, redundant: 4, groups: 4, nodes: 3)).contains("--nodes 3 does not divide --expert-ranks 4"))
        #expect(error(.init(routedExperts: 8, expertRanks: 2, redundant: -1)).contains("--redundant -1"))
    }

    /// The layout plan-placement writes for a recorded load: rank 0 router, the default
    /// layout's attention ranks, then the expert ranks; it loads back, validated, for its -np and
    /// the model's MoE layers, and holds the plan layer by layer.
    @Test func writtenLayoutLoadsAndValidates() throws {
        let record = ExpertLoadRecord(modelFingerprint: "f", model: "m", routedExperts: 16, expertsPerToken: 4, groups: 4, groupsPerToken: 2,
                                      window: .init(start: Date(), end: Date(), steps: 10, tokens: 100),
                                      layers: [.init(layer: 1, tokensPerExpert: [90, 40, 30, 20, 10, 10, 10, 10, 5, 5, 5, 5, 50, 60, 30, 20]),
                                               .init(layer: 2, tokensPerExpert: [5, 5, 5, 5, 100, 80, 10, 10, 10, 10, 40, 40, 30, 20, 20, 10])])
        for (ranks, redundant, world, attention) in [(2, 2, 4, [1]), (6, 2, 9, [1, 2])] {
            let placement = try ExpertPlacement(.init(routedExperts: 16, expertRanks: ranks, redundant: redundant, groups: 4))
            let (layers, overall) = placement.plan(record)
            #expect(layers.map(\.layer) == [1, 2] && overall.layer == nil)
            let layout = try ClusterLayout.planned(placement: overall.experts,
                                                   layers: Dictionary(uniqueKeysWithValues: layers.map { ($0.layer!, $0.experts) }),
                                                   routedExperts: 16, moeLayers: [1, 2])
            #expect(layout.worldSize == world && layout.attentionRanks == attention && layout.expertRanks == Array((world - ranks)..<world))
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("planned-\(getpid())-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: url) }
            try Data(layout.fileText(description: "test \"plan\"").utf8).write(to: url)
            #expect(try ClusterLayout.worldSize(of: url) == world)
            let loaded = try ClusterLayout.load(url, worldSize: world, routedExperts: 16, moeLayers: [1, 2])
            #expect(loaded == layout)
            for l in layers {
                for (i, ids) in l.experts.enumerated() { #expect(loaded.experts(heldBy: world - ranks + i, layer: l.layer!) == ids) }
            }
        }
        #expect(ClusterLayout.defaultAttentionRanks(expertRanks: 2) == 1 && ClusterLayout.defaultAttentionRanks(expertRanks: 6) == 2)
    }
}
