import Cluster
import Routing
import Testing

/// Which expert-communicator rank answers each (token, slot) when experts have replicas.
@Suite struct DispatchToReplicas {
    static func routing(_ experts: [[Int]]) -> RoutingTable {
        var table = RoutingTable(topK: experts[0].count)
        table.reset(tokens: experts.count)
        table.experts = experts.flatMap { $0.map(Int32.init) }
        return table
    }

    /// Without replicas each slot goes to its expert's one rank, as before.
    @Test func unreplicatedExpertsGoToTheirRank() {
        let table = Self.routing([[0, 3], [1, 2], [3, 0]])
        let layout = DispatchLayout(routing: table, ranks: 3) { [$0 < 2 ? 1 : 2] }
        #expect(layout.tokens == [[], [0, 1, 2], [0, 1, 2]])
        #expect(layout.slots == [[], [0, 2, 5], [1, 3, 4]])
        #expect(layout.slotRank == [1, 2, 1, 2, 2, 1])
    }

    /// A hot expert on two ranks: its tokens alternate between them, so the rows even out
    /// (6 tokens of expert 0: 3 and 3); the same routing gives the same split every time.
    @Test func aReplicatedExpertsTokensEvenOut() {
        let table = Self.routing(Array(repeating: [0], count: 6))
        let replicas: (Int) -> [Int] = { _ in [1, 2] }
        let layout = DispatchLayout(routing: table, ranks: 3, replicas: replicas)
        #expect(layout.rows == [0, 3, 3])
        #expect(layout.tokens == [[], [0, 2, 4], [1, 3, 5]], "ties go to the lower rank")
        #expect(layout.slotRank == [1, 2, 1, 2, 1, 2])
        #expect(DispatchLayout(routing: table, ranks: 3, replicas: replicas).slotRank == layout.slotRank)
    }

    /// A token's slots stay on a rank that already receives it (no extra row) unless another
    /// replica would then have fewer rows; rows count tokens once per rank.
    @Test func slotsJoinARankThatAlreadyHasTheToken() {
        // Expert 0 on rank 1 only, expert 1 on ranks 1 and 2, expert 2 on rank 2 only.
        let replicas: (Int) -> [Int] = { [[1], [1, 2], [2]][$0] }
        // Token 0: expert 0 → rank 1 (1 row); expert 1 → rank 1 again (no new row: 1 vs rank 2's 1).
        // Token 1: expert 2 → rank 2 (rank 2: 1 row); expert 1 → rank 1 would make 2 rows, rank 2 stays 1: rank 2.
        // Token 2: expert 1 → ranks 1 and 2 both at 1 → 2 rows: tie, rank 1; expert 0 → rank 1.
        let table = Self.routing([[0, 1], [2, 1], [1, 0]])
        let layout = DispatchLayout(routing: table, ranks: 3, replicas: replicas)
        #expect(layout.slotRank == [1, 1, 2, 2, 1, 1])
        #expect(layout.tokens == [[], [0, 2], [1]])
        #expect(layout.slots == [[], [0, 1, 4, 5], [2, 3]])
        #expect(layout.rows == [0, 2, 1] && layout.pairs == [0, 4, 2])
    }

    /// Every slot is answered by exactly one replica, and replica rows differ by at most one
    /// when every expert is on every rank (the whole batch spreads evenly).
    @Test func fullReplicationSpreadsTheBatch() {
        var table = RoutingTable(topK: 4)
        table.reset(tokens: 101)
        table.experts = (0..<(101 * 4)).map { (i: Int) -> Int32 in Int32((i * 7 + i / 4) % 16) }
        let layout = DispatchLayout(routing: table, ranks: 4) { _ in [1, 2, 3] }
        #expect(layout.slotRank.allSatisfy { (1...3).contains($0) })
        #expect(layout.pairs.reduce(0, +) == 404)
        #expect(layout.rows.dropFirst().max()! - layout.rows.dropFirst().min()! <= 1, "\(layout.rows)")
        #expect(layout.rows.reduce(0, +) == 101, "each token goes to one rank")
    }
}
