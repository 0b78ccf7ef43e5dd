@testable import Cluster
import Foundation
import Testing

/// The profile's per-layer balancedness: mean rows per expert rank ÷ the most any received,
/// over the run's steps.
@Suite struct AllToAllProfileBalance {
    static func profile() -> AllToAllProfile {
        let profile = AllToAllProfile(worldSize: 5, routedExperts: 4)
        // Layer 1: ranks 2, 3, 4 receive 6+4, 2+2, 0+6 rows over two steps: 10, 4, 6 → mean 20/3, max 10.
        profile.record(layer: 1, dispatch: 1e-6, combine: 1e-6, expert: 1e-6, dispatchBytes: 0, combineBytes: 0, tokens: 6,
                       experts: [0, 1, 2, 3], rowsPerRank: [2: 6, 3: 2, 4: 0], pairsPerRank: [2: 6, 3: 2, 4: 0])
        profile.record(layer: 1, dispatch: 1e-6, combine: 1e-6, expert: 1e-6, dispatchBytes: 0, combineBytes: 0, tokens: 6,
                       experts: [0, 1], rowsPerRank: [2: 4, 3: 2, 4: 6], pairsPerRank: [2: 4, 3: 2, 4: 6])
        // Layer 2: even.
        profile.record(layer: 2, dispatch: 1e-6, combine: 1e-6, expert: 1e-6, dispatchBytes: 0, combineBytes: 0, tokens: 3,
                       experts: [0], rowsPerRank: [2: 3, 3: 3, 4: 3], pairsPerRank: [2: 3, 3: 3, 4: 3])
        return profile
    }

    @Test func perLayerMeanOverMax() throws {
        let profile = Self.profile()
        #expect(profile.layers[1]!.balancedness == (20.0 / 3) / 10)
        #expect(profile.layers[2]!.balancedness == 1)
        let layers = try #require(profile.json["layers"] as? [[String: Any]])
        #expect(layers.compactMap { $0["balancedness"] as? Double } == [(20.0 / 3) / 10, 1])
        let text = profile.text
        #expect(text.contains("rows per expert rank: r2:10 r3:4 r4:6  (balancedness mean/max 0.667, imbalance max/mean 1.50)"), "\(text)")
        #expect(text.contains("rows per expert rank: r2:3 r3:3 r4:3  (balancedness mean/max 1.000, imbalance max/mean 1.00)"), "\(text)")
    }
}
