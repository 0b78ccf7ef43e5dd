import ControlPlane
import Foundation
import Transport

/// The baseline the data plane is measured against: a raw `MPI_Alltoallv` moving the same
/// element counts between the same ranks (router → expert ranks, then back), best of N.
enum RawAllToAll {
    /// Runs on the router and every expert rank alike; returns best dispatch and combine seconds.
    static func time(comm: Communicator, router: Int, shutdown: Shutdown) throws -> (dispatch: Double, combine: Double) {
        let n = comm.size
        let isRouter = comm.rank == router
        let none = [Int](repeating: 0, count: n)
        // `all[r]` is what moves between the router and expert-communicator rank r.
        func run(_ all: [Int], routerSends: Bool) throws -> Double {
            let mine = isRouter ? all : (0..<n).map { $0 == router ? all[comm.rank] : 0 }
            let sending = isRouter == routerSends
            let send = sending ? mine : none, recv = sending ? none : mine
            var sendBuffer = [Float](repeating: 1, count: max(send.reduce(0, +), 1))
            var recvBuffer = [Float](repeating: 0, count: max(recv.reduce(0, +), 1))
            var best = Double.infinity
            for _ in 0..<shutdown.baselineRepetitions {
                try comm.barrier()
                let start = DispatchTime.now().uptimeNanoseconds
                try sendBuffer.withUnsafeMutableBufferPointer { s in
                    try recvBuffer.withUnsafeMutableBufferPointer { r in
                        try comm.allToAllV(send: UnsafeBufferPointer(rebasing: s[..<send.reduce(0, +)]), sendCounts: send,
                                           recv: UnsafeMutableBufferPointer(rebasing: r[..<recv.reduce(0, +)]), recvCounts: recv)
                    }
                }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return best
        }
        return (try run(shutdown.baselineDispatchCounts, routerSends: true), try run(shutdown.baselineCombineCounts, routerSends: false))
    }
}
