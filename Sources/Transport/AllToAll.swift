internal import CMPI

extension Communicator {
    /// Sends `sendCounts[r]` elements to each rank `r` (taken from `send` in rank order)
    /// and receives `recvCounts[r]` elements from each rank `r` (laid into `recv` in rank
    /// order): MoE dispatch and combine. Displacements are the running sums of the counts.
    /// Collective.
    public func allToAllV<T: MPIElement>(send: UnsafeBufferPointer<T>, sendCounts: [Int],
                                         recv: UnsafeMutableBufferPointer<T>, recvCounts: [Int]) throws {
        let op = "MPI_Alltoallv"
        let (sc, sd, rc, rd) = try layout(op, send.count, sendCounts, recv.count, recvCounts)
        try check(MPI_Alltoallv(send.baseAddress, sc, sd, T.mpiDatatype, recv.baseAddress, rc, rd, T.mpiDatatype, handle), op)
    }

    /// Starts `allToAllV` without waiting, so compute can overlap the exchange.
    /// The request owns copies of the count and displacement arrays; the caller keeps
    /// `send` and `recv` alive until `wait()` returns and does not read `recv` before.
    public func startAllToAllV<T: MPIElement>(send: UnsafeBufferPointer<T>, sendCounts: [Int],
                                              recv: UnsafeMutableBufferPointer<T>, recvCounts: [Int]) throws -> AllToAllRequest {
        let op = "MPI_Ialltoallv"
        let (sc, sd, rc, rd) = try layout(op, send.count, sendCounts, recv.count, recvCounts)
        let request = AllToAllRequest(size: size)
        for (i, values) in [sc, sd, rc, rd].enumerated() {
            request.slice(i, size: size).update(from: values, count: size)
        }
        let rcode = MPI_Ialltoallv(send.baseAddress, request.slice(0, size: size), request.slice(1, size: size), T.mpiDatatype,
                                   recv.baseAddress, request.slice(2, size: size), request.slice(3, size: size), T.mpiDatatype,
                                   handle, &request.request)
        try check(rcode, op)
        return request
    }

    /// Sends `values[r]` to each rank `r` and returns what each rank sent this one, in rank
    /// order (`MPI_Alltoall` of one value per pair): how the routers tell every expert rank
    /// how many rows each will send it. Collective.
    public func allToAll(_ values: [Int32]) throws -> [Int32] {
        let op = "MPI_Alltoall"
        guard values.count == size else {
            throw TransportError.invalidArgument(operation: op, message: "values has \(values.count) entries for \(size) ranks")
        }
        var received = [Int32](repeating: 0, count: size)
        try values.withUnsafeBufferPointer { send in
            try received.withUnsafeMutableBufferPointer { recv in
                try check(MPI_Alltoall(send.baseAddress, 1, conclave_int32(), recv.baseAddress, 1, conclave_int32(), handle), op)
            }
        }
        return received
    }

    /// Counts and displacements as MPI wants them, after checking they fit the buffers.
    private func layout(_ op: String, _ sendCapacity: Int, _ sendCounts: [Int], _ recvCapacity: Int, _ recvCounts: [Int])
        throws -> ([Int32], [Int32], [Int32], [Int32]) {
        for (name, counts, capacity) in [("sendCounts", sendCounts, sendCapacity), ("recvCounts", recvCounts, recvCapacity)] {
            guard counts.count == size else {
                throw TransportError.invalidArgument(operation: op, message: "\(name) has \(counts.count) entries for \(size) ranks")
            }
            if let bad = counts.firstIndex(where: { $0 < 0 }) {
                throw TransportError.invalidArgument(operation: op, message: "\(name)[\(bad)] is \(counts[bad]), which is negative")
            }
            let total = counts.reduce(0, +)
            guard total <= capacity else {
                throw TransportError.invalidArgument(operation: op, message: "\(name) add up to \(total) elements but the buffer holds \(capacity)")
            }
        }
        let sc = try sendCounts.map { try mpiCount($0, op, "send count") }
        let rc = try recvCounts.map { try mpiCount($0, op, "receive count") }
        return (sc, try prefixSums(sendCounts, op), rc, try prefixSums(recvCounts, op))
    }
}
