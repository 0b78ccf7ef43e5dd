import Experts
import Foundation
import Kernels
import Routing
import Transport

/// Where one MoE layer's tokens go: for every rank of the expert communicator, the tokens
/// (router-side row indices) it receives, each once however many of its experts it runs,
/// and the (token, slot) pairs whose expert outputs it returns. A slot whose expert has
/// replicas on several ranks is answered by exactly one of them (`slotRank`).
public struct DispatchLayout: Sendable {
    public let topK: Int
    /// Per expert-communicator rank, the token rows sent to it, ascending.
    public let tokens: [[Int]]
    /// Per expert-communicator rank, the slots `t · topK + k` it answers, in the order it
    /// returns them: by token, then slot.
    public let slots: [[Int]]
    /// Per slot `t · topK + k`, the expert-communicator rank that answers it.
    public let slotRank: [Int]
    /// Per expert-communicator rank, the counts of `tokens` and of `slots`: stored, as dispatch,
    /// combine and the profile read them per rank in every layer of every step.
    public let rows: [Int]
    public let pairs: [Int]

    /// Computed from the gate's choices and each expert's replicas (`replicas(e)`: the
    /// expert-communicator ranks holding expert `e` in this layer). Slots go in order — token
    /// by token, each token's slots in the gate's order — to the replica whose rank then has
    /// the fewest rows (a rank already receiving the token for another of its experts takes
    /// the slot without a new row), ties to the lowest rank: the replicas' rows even out, and
    /// the same routing always gives the same split.
    public init(routing: RoutingTable, ranks: Int, replicas: (Int) -> [Int]) {
        topK = routing.topK
        var tokens = [[Int]](repeating: [], count: ranks), slots = [[Int]](repeating: [], count: ranks)
        var slotRank = [Int](repeating: -1, count: routing.tokens * routing.topK)
        for t in 0..<routing.tokens {
            for k in 0..<routing.topK {
                let holders = replicas(Int(routing.experts[t * routing.topK + k]))
                var r = holders[0]
                if holders.count > 1 {
                    func rowsAfter(_ q: Int) -> Int { tokens[q].count + (tokens[q].last == t ? 0 : 1) }
                    for q in holders.dropFirst() where rowsAfter(q) < rowsAfter(r) || (rowsAfter(q) == rowsAfter(r) && q < r) { r = q }
                }
                if tokens[r].last != t { tokens[r].append(t) }
                slots[r].append(t * routing.topK + k)
                slotRank[t * routing.topK + k] = r
            }
        }
        self.tokens = tokens
        self.slots = slots
        self.slotRank = slotRank
        rows = tokens.map(\.count)
        pairs = slots.map(\.count)
    }
}

/// What a dispatch left in flight; `combine` consumes it.
public struct DispatchHandle {
    public let layout: DispatchLayout
    /// Router-side seconds to hand the rows to MPI (counts broadcast, packing, posting).
    public let postSeconds: Double
    public let bytes: Int
    let request: AllToAllRequest
}

/// What a combine brought back, with the timings the profile reports.
public struct CombineResult {
    /// Dispatch as the expert ranks saw it: posting, plus the slowest rank's wait for its rows.
    public let dispatchSeconds: Double
    /// Combine wall time on the router minus the slowest expert rank's FFN time: the transfer.
    public let combineSeconds: Double
    public let expertSeconds: Double
    public let bytes: Int
}

/// The expert data plane over the communicator of the routers and the expert ranks, in
/// the spirit of DeepEP: each router computes a layout for its tokens, `dispatch`es token
/// rows (each carrying its experts), the expert ranks run every router's rows of the layer
/// in one exchange, and `combine` brings each router every (token, expert) output of its
/// rows back, unweighted, for it to sum in the gate's order
/// (`RoutedExperts.sum`): a per-rank partial sum would make the result depend on which
/// rank holds which expert. Activations travel as raw MPI buffers.
///
/// With several routers, an expert rank receives the rows of each (counts from each router,
/// `MPI_Alltoall`), runs its experts once over all of them, and returns each router the
/// outputs of that router's rows, in the order it sent them.
///
/// Row format router → expert: `hidden` activations, then `topK` expert ids (-1 for slots
/// another rank answers: experts held elsewhere, or replicas the layout gave another rank). Expert → router: `hidden` values per (row, held slot), by row then
/// slot, then two values: the expert rank's seconds waiting for its rows and running its
/// FFNs, so the profile can tell transfer from compute without comparing clocks across
/// ranks (on a crowded node the router itself may not be scheduled while experts compute).
public final class ExpertDataPlane {
    public let comm: Communicator
    /// The communicator ranks of every router, ascending; the first is rank 0's, which
    /// plans (and times the baseline all-to-all).
    public let routers: [Int]
    public var router: Int { routers[0] }
    public let hidden: Int
    public let topK: Int
    var width: Int { hidden + topK }
    /// Owned buffers: a dispatch in flight reads `outgoing` until `combine` completes it.
    private let outgoing = Scratch(), incoming = Scratch(), results = Scratch()

    public init(comm: Communicator, routers: [Int], hidden: Int, topK: Int) {
        self.comm = comm
        self.routers = routers.sorted()
        self.hidden = hidden
        self.topK = topK
    }

    // MARK: router side

    /// Values an expert rank appends to its combine rows: its dispatch wait and FFN seconds.
    static let trailer = 2

    /// Sends each expert rank its rows of `x` (`[tokens × hidden]`) with their routing.
    /// The exchange stays in flight; `combine` completes it.
    public func dispatch(_ x: UnsafePointer<Float>, routing: RoutingTable, layout: DispatchLayout) throws -> DispatchHandle {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try comm.allToAll(layout.rows.map { Int32($0) })
        let total = layout.rows.reduce(0, +) * width
        let send = outgoing.floats(total)
        var row = send
        for (rank, tokens) in layout.tokens.enumerated() where !tokens.isEmpty {
            for t in tokens {
                row.update(from: x + t * hidden, count: hidden)
                for k in 0..<topK {
                    row[hidden + k] = layout.slotRank[t * topK + k] == rank ? Float(routing.experts[t * topK + k]) : -1
                }
                row += width
            }
        }
        let request = try comm.startAllToAllV(send: UnsafeBufferPointer(start: send, count: total), sendCounts: layout.rows.map { $0 * width },
                                              recv: UnsafeMutableBufferPointer(start: nil, count: 0), recvCounts: none)
        return DispatchHandle(layout: layout, postSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                              bytes: total * 4, request: request)
    }

    /// Puts each rank's returned expert outputs into their slots of `slots` (`[tokens × topK × hidden]`).
    public func combine(_ handle: DispatchHandle, into slots: UnsafeMutablePointer<Float>) throws -> CombineResult {
        let start = DispatchTime.now().uptimeNanoseconds
        let pairs = handle.layout.pairs
        let counts = pairs.enumerated().map { routers.contains($0.offset) ? 0 : $0.element * hidden + Self.trailer }
        let total = counts.reduce(0, +)
        let received = incoming.floats(total)
        try comm.allToAllV(send: UnsafeBufferPointer(start: nil, count: 0), sendCounts: none,
                           recv: UnsafeMutableBufferPointer(start: received, count: total), recvCounts: counts)
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        try handle.request.wait()
        var slowestWait = 0.0, slowest = 0.0
        var at = received
        for (rank, answered) in handle.layout.slots.enumerated() where !routers.contains(rank) {
            for slot in answered {
                (slots + slot * hidden).update(from: at, count: hidden)
                at += hidden
            }
            slowestWait = max(slowestWait, Double(at[0]))
            slowest = max(slowest, Double(at[1]))
            at += Self.trailer
        }
        return CombineResult(dispatchSeconds: handle.postSeconds + slowestWait, combineSeconds: max(wall - slowest, 0),
                             expertSeconds: slowest, bytes: total * 4)
    }

    // MARK: expert side

    /// Receives every router's rows for one layer, runs `experts` once on all of them and
    /// returns each router the outputs of its rows. Returns the rows served and the seconds
    /// their FFNs took.
    @discardableResult
    public func serve(_ experts: RoutedExperts) throws -> (rows: Int, seconds: Double) {
        let counts = try comm.allToAll(Array(repeating: 0, count: comm.size))
        let rowsFrom = routers.map { Int(counts[$0]) }
        let rows = rowsFrom.reduce(0, +)
        let announced = DispatchTime.now().uptimeNanoseconds
        let x = incoming.floats(rows * width)
        var recvCounts = none
        for (i, r) in routers.enumerated() { recvCounts[r] = rowsFrom[i] * width }
        // Dispatch is non-blocking on every rank: a non-blocking collective never matches a blocking one.
        try comm.startAllToAllV(send: UnsafeBufferPointer(start: nil, count: 0), sendCounts: none,
                                recv: UnsafeMutableBufferPointer(start: x, count: rows * width), recvCounts: recvCounts).wait()
        let start = DispatchTime.now().uptimeNanoseconds
        // Rows arrive router by router, so each router's (row, slot) outputs are one run of `pairsFrom`.
        var byExpert: [Int: [RoutingAssignments.Pair]] = [:], pairs = 0
        var pairsFrom = [Int](repeating: 0, count: routers.count), segment = 0, segmentEnd = rowsFrom.first ?? 0
        for r in 0..<rows {
            while r >= segmentEnd { segment += 1; segmentEnd += rowsFrom[segment] }
            let row = x + r * width
            for k in 0..<topK where row[hidden + k] >= 0 {
                byExpert[Int(row[hidden + k]), default: []].append(.init(token: r, row: pairs))
                pairs += 1
                pairsFrom[segment] += 1
            }
        }
        var sendCounts = none
        for (i, r) in routers.enumerated() { sendCounts[r] = pairsFrom[i] * hidden + Self.trailer }
        let count = sendCounts.reduce(0, +)
        let out = outgoing.floats(count)
        // One router: the outputs go straight to the send buffer; several: each router's run is
        // followed by its trailer, so they are computed apart and copied.
        let computed = routers.count == 1 ? out : results.floats(pairs * hidden)
        experts.run(x, ldx: width, table: RoutingAssignments(byExpert: byExpert.keys.sorted().map { ($0, byExpert[$0]!) }), into: computed)
        let ffnSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        var at = out, from = computed
        for n in pairsFrom {
            if computed != out { at.update(from: from, count: n * hidden) }
            at[n * hidden] = Float(Double(start - announced) / 1e9)
            at[n * hidden + 1] = Float(ffnSeconds)
            at += n * hidden + Self.trailer
            from += n * hidden
        }
        try comm.allToAllV(send: UnsafeBufferPointer(start: out, count: count), sendCounts: sendCounts,
                           recv: UnsafeMutableBufferPointer(start: nil, count: 0), recvCounts: none)
        return (rows, ffnSeconds)
    }

    /// Zero counts for every rank: the side of an exchange this rank does not take part in.
    private var none: [Int] { Array(repeating: 0, count: comm.size) }
}
