internal import CMPI

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A group of ranks that talk to each other: the world from `MPIRuntime.start()`, or a
/// part of it from `split(color:key:)`. Every MPI call of the project goes through here.
///
/// MPI runs with `MPI_THREAD_MULTIPLE`, so a communicator may be used from several
/// threads; as in MPI, collectives on one communicator must be called in the same order
/// on every rank, and not concurrently.
public struct Communicator: @unchecked Sendable {
    let handle: MPI_Comm
    /// This process's rank in the communicator.
    public let rank: Int
    /// How many ranks the communicator has.
    public let size: Int

    /// Pass as a source to receive or probe from any rank.
    public static var anySource: Int { Int(conclave_any_source()) }
    /// Pass as a tag to receive or probe any tag.
    public static var anyTag: Int { Int(conclave_any_tag()) }
    /// The largest tag usable on every MPI implementation.
    public static var maxTag: Int { Int(conclave_tag_ub_guaranteed()) }

    init(handle: MPI_Comm) throws {
        self.handle = handle
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(handle, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(handle, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
    }

    // MARK: groups

    /// Splits the communicator: ranks passing the same `color` share a new communicator,
    /// ordered by `key` (then by rank here). A rank passing `nil` joins none and gets `nil`.
    /// Collective. Free the result with `free()` when done.
    public func split(color: Int?, key: Int) throws -> Communicator? {
        let op = "MPI_Comm_split"
        let c = try color.map { try mpiCount($0, op, "color") } ?? conclave_undefined()
        guard let k = Int32(exactly: key) else { throw TransportError.invalidArgument(operation: op, message: "key \(key) does not fit in Int32") }
        var out: MPI_Comm? = conclave_comm_null()
        try check(MPI_Comm_split(handle, c, k, &out), op)
        guard let out, out != conclave_comm_null() else { return nil }
        return try Communicator(handle: out)
    }

    /// Frees a communicator made by `split`. Collective. The world cannot be freed.
    public func free() throws {
        guard handle != conclave_comm_world() else {
            throw TransportError.invalidArgument(operation: "MPI_Comm_free", message: "the world communicator cannot be freed")
        }
        var h: MPI_Comm? = handle
        try check(MPI_Comm_free(&h), "MPI_Comm_free")
    }

    // MARK: collectives

    /// Waits until every rank has called `barrier()`.
    public func barrier() throws {
        try check(MPI_Barrier(handle), "MPI_Barrier")
    }

    /// Sends `bytes` from `root` to every rank; returns what root sent (on root too).
    /// Other ranks' `bytes` are ignored. Any size: the length travels first.
    public func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8] {
        let op = "MPI_Bcast"
        let r = try peer(root, op)
        var length = Int64(bytes.count)
        try check(MPI_Bcast(&length, 1, conclave_int64(), r, handle), op, peer: root)
        return try broadcastPayload(bytes, length: length, root: root)
    }

    /// `broadcast(bytes:root:)` for ranks that may wait long for the message, like a
    /// server's ranks between requests: they poll a non-blocking broadcast of the length
    /// with short sleeps instead of Open MPI's busy wait, leaving the cores to the ranks
    /// that work. Every rank of one broadcast must call this variant.
    public func broadcastWaitingIdly(bytes: [UInt8], root: Int) throws -> [UInt8] {
        let op = "MPI_Ibcast"
        let r = try peer(root, op)
        // MPI writes the length when the broadcast completes: it must not live on a stack frame MPI outlives.
        let length = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        defer { length.deallocate() }
        length.pointee = Int64(bytes.count)
        var request: MPI_Request? = conclave_request_null()
        try check(MPI_Ibcast(length, 1, conclave_int64(), r, handle, &request), op, peer: root)
        let start = MPI_Wtime()
        while true {
            var done: Int32 = 0
            try check(MPI_Test(&request, &done, conclave_status_ignore()), op, peer: root)
            if done != 0 { break }
            // Back-to-back steps: yield like Open MPI's own wait (sleeping polls measured slower);
            // after 2 ms without a message the server is idle, and the rank sleeps between polls.
            if MPI_Wtime() - start < 0.002 { sched_yield() } else { usleep(500) }
        }
        return try broadcastPayload(bytes, length: length.pointee, root: root)
    }

    private func broadcastPayload(_ bytes: [UInt8], length: Int64, root: Int) throws -> [UInt8] {
        let op = "MPI_Bcast"
        let r = try peer(root, op)
        let count = try mpiCount(Int(length), op, "broadcast length")
        if rank == root {
            var copy = bytes
            try copy.withUnsafeMutableBytes { try check(MPI_Bcast($0.baseAddress, count, conclave_byte(), r, handle), op, peer: root) }
            return bytes
        }
        var received = [UInt8](repeating: 0, count: Int(count))
        try received.withUnsafeMutableBytes { try check(MPI_Bcast($0.baseAddress, count, conclave_byte(), r, handle), op, peer: root) }
        return received
    }

    /// Broadcasts `buffer` in place from `root`; every rank passes a buffer of the same size.
    public func broadcast<T: MPIElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        let op = "MPI_Bcast"
        try check(MPI_Bcast(buffer.baseAddress, mpiCount(buffer.count, op, "buffer count"), T.mpiDatatype, peer(root, op), handle), op, peer: root)
    }

    /// Every rank's `bytes`, in rank order, on `root`; an empty array on other ranks.
    public func gather(bytes: [UInt8], root: Int) throws -> [[UInt8]] {
        let op = "MPI_Gatherv"
        let r = try peer(root, op)
        var myCount = try mpiCount(bytes.count, op, "byte count")
        var counts = [Int32](repeating: 0, count: rank == root ? size : 0)
        try counts.withUnsafeMutableBufferPointer { c in
            try check(MPI_Gather(&myCount, 1, conclave_int32(), c.baseAddress, 1, conclave_int32(), r, handle), "MPI_Gather", peer: root)
        }
        let displacements = try prefixSums(counts.map(Int.init), op)
        let total = rank == root ? Int(displacements.last ?? 0) + Int(counts.last ?? 0) : 0
        var all = [UInt8](repeating: 0, count: total)
        try bytes.withUnsafeBytes { send in
            try all.withUnsafeMutableBytes { recv in
                try check(MPI_Gatherv(send.baseAddress, myCount, conclave_byte(), recv.baseAddress, counts, displacements,
                                      conclave_byte(), r, handle), op, peer: root)
            }
        }
        guard rank == root else { return [] }
        return (0..<size).map { i in Array(all[Int(displacements[i]) ..< Int(displacements[i]) + Int(counts[i])]) }
    }

    /// Every rank's `value`, in rank order, on every rank.
    public func allgather(_ value: Int) throws -> [Int] {
        var mine = Int64(value)
        var all = [Int64](repeating: 0, count: size)
        try all.withUnsafeMutableBufferPointer { out in
            try check(MPI_Allgather(&mine, 1, conclave_int64(), out.baseAddress, 1, conclave_int64(), handle), "MPI_Allgather")
        }
        return all.map { Int($0) }
    }

    // MARK: point to point: control messages (bytes)

    /// Sends `bytes` to rank `destination`. Blocks until the buffer may be reused, which
    /// for a large message means until the peer receives it: use `startSend` to a rank
    /// that may be sending to you at the same time, or to yourself.
    public func send(bytes: [UInt8], to destination: Int, tag: Int) throws {
        let op = "MPI_Send"
        let count = try mpiCount(bytes.count, op, "byte count")
        let (d, t) = (try peer(destination, op), try mpiTag(tag, op))
        try bytes.withUnsafeBytes { try check(MPI_Send($0.baseAddress, count, conclave_byte(), d, t, handle), op, peer: destination) }
    }

    /// Starts sending a copy of `bytes`; the request owns the copy until it completes.
    public func startSend(bytes: [UInt8], to destination: Int, tag: Int) throws -> TransferRequest {
        let op = "MPI_Isend"
        let count = try mpiCount(bytes.count, op, "byte count")
        let (d, t) = (try peer(destination, op), try mpiTag(tag, op))
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
        let request = TransferRequest(operation: op, peer: destination, datatype: conclave_byte(), sendCount: bytes.count, owned: copy)
        do {
            try check(MPI_Isend(copy.baseAddress, count, conclave_byte(), d, t, handle, &request.request), op, peer: destination)
        } catch {
            request.markComplete()
            throw error
        }
        return request
    }

    /// Receives one message of any size from `source` (or `Communicator.anySource`) with
    /// `tag` (or `Communicator.anyTag`). Blocks until one arrives.
    public func receive(from source: Int, tag: Int) throws -> (bytes: [UInt8], source: Int) {
        let op = "MPI_Mprobe"
        var message: MPI_Message? = conclave_message_null()
        var status = MPI_Status()
        try check(MPI_Mprobe(try peer(source, op, allowAny: true), try mpiTag(tag, op, allowAny: true), handle, &message, &status), op, peer: source)
        return try receiveMatched(&message, status)
    }

    /// Like `receive(from:tag:)`, but gives up after `timeout` seconds with
    /// `TransportError.timeout`, so a rank notices a dead or stuck peer instead of hanging.
    /// Polls with `MPI_Improbe` and short sleeps (up to 1 ms between polls).
    public func receive(from source: Int, tag: Int, timeout: Double) throws -> (bytes: [UInt8], source: Int) {
        var message: MPI_Message? = conclave_message_null()
        let status = try pollMatched(from: source, tag: tag, timeout: timeout, message: &message, operation: "receive")
        return try receiveMatched(&message, status)
    }

    /// Blocks until a message from `source`/`tag` (either may be "any") is waiting, and
    /// says where it is from, its tag and its size in bytes, without receiving it.
    public func probe(from source: Int = Communicator.anySource, tag: Int = Communicator.anyTag) throws -> ProbeResult {
        let op = "MPI_Probe"
        var status = MPI_Status()
        try check(MPI_Probe(try peer(source, op, allowAny: true), try mpiTag(tag, op, allowAny: true), handle, &status), op, peer: source)
        return try ProbeResult(status, op)
    }

    /// Like `probe`, but returns nil at once when nothing is waiting.
    public func poll(from source: Int = Communicator.anySource, tag: Int = Communicator.anyTag) throws -> ProbeResult? {
        let op = "MPI_Iprobe"
        var status = MPI_Status()
        var flag: Int32 = 0
        try check(MPI_Iprobe(try peer(source, op, allowAny: true), try mpiTag(tag, op, allowAny: true), handle, &flag, &status), op, peer: source)
        return flag != 0 ? try ProbeResult(status, op) : nil
    }

    // MARK: point to point: activations (floats into caller buffers)

    /// Sends `buffer` to `destination`; blocks until the buffer may be reused.
    public func sendFloats(_ buffer: UnsafeBufferPointer<Float>, to destination: Int, tag: Int) throws {
        let op = "MPI_Send"
        try check(MPI_Send(buffer.baseAddress, mpiCount(buffer.count, op, "float count"), conclave_float(),
                           peer(destination, op), mpiTag(tag, op), handle), op, peer: destination)
    }

    /// Receives floats from `source` into `buffer`; returns how many arrived.
    /// A message longer than `buffer` fails with `TransportError.mpi` (MPI_ERR_TRUNCATE).
    @discardableResult
    public func receiveFloats(into buffer: UnsafeMutableBufferPointer<Float>, from source: Int, tag: Int) throws -> Int {
        let op = "MPI_Recv"
        var status = MPI_Status()
        try check(MPI_Recv(buffer.baseAddress, mpiCount(buffer.count, op, "float count"), conclave_float(),
                           peer(source, op, allowAny: true), mpiTag(tag, op, allowAny: true), handle, &status), op, peer: source)
        var count: Int32 = 0
        try check(MPI_Get_count(&status, conclave_float(), &count), "MPI_Get_count", peer: source)
        return Int(count)
    }

    /// Like `receiveFloats(into:from:tag:)`, giving up after `timeout` seconds with
    /// `TransportError.timeout`. A longer message than `buffer` is consumed and reported
    /// as `TransportError.truncated`.
    @discardableResult
    public func receiveFloats(into buffer: UnsafeMutableBufferPointer<Float>, from source: Int, tag: Int, timeout: Double) throws -> Int {
        var message: MPI_Message? = conclave_message_null()
        var status = try pollMatched(from: source, tag: tag, timeout: timeout, message: &message, operation: "receiveFloats")
        var count: Int32 = 0
        try check(MPI_Get_count(&status, conclave_float(), &count), "MPI_Get_count", peer: Int(status.MPI_SOURCE))
        if Int(count) > buffer.count {
            var scratch = [Float](repeating: 0, count: Int(count))
            try scratch.withUnsafeMutableBufferPointer {
                try check(MPI_Mrecv($0.baseAddress, count, conclave_float(), &message, &status), "MPI_Mrecv", peer: Int(status.MPI_SOURCE))
            }
            throw TransportError.truncated(operation: "receiveFloats", peer: Int(status.MPI_SOURCE), capacity: buffer.count, received: Int(count))
        }
        try check(MPI_Mrecv(buffer.baseAddress, count, conclave_float(), &message, &status), "MPI_Mrecv", peer: Int(status.MPI_SOURCE))
        return Int(count)
    }

    /// Starts sending `buffer`. The caller keeps `buffer` alive and unchanged until the
    /// request completes (`wait()` returns or `test()` says true).
    public func startSendFloats(_ buffer: UnsafeBufferPointer<Float>, to destination: Int, tag: Int) throws -> TransferRequest {
        let op = "MPI_Isend"
        let request = TransferRequest(operation: op, peer: destination, datatype: conclave_float(), sendCount: buffer.count)
        do {
            try check(MPI_Isend(buffer.baseAddress, mpiCount(buffer.count, op, "float count"), conclave_float(),
                                peer(destination, op), mpiTag(tag, op), handle, &request.request), op, peer: destination)
        } catch {
            request.markComplete()
            throw error
        }
        return request
    }

    /// Starts receiving floats into `buffer`. The caller keeps `buffer` alive and does not
    /// touch it until the request completes; `wait()` returns how many floats arrived.
    public func startReceiveFloats(into buffer: UnsafeMutableBufferPointer<Float>, from source: Int, tag: Int) throws -> TransferRequest {
        let op = "MPI_Irecv"
        let request = TransferRequest(operation: op, peer: source, datatype: conclave_float(), sendCount: nil)
        do {
            try check(MPI_Irecv(buffer.baseAddress, mpiCount(buffer.count, op, "float count"), conclave_float(),
                                peer(source, op, allowAny: true), mpiTag(tag, op, allowAny: true), handle, &request.request), op, peer: source)
        } catch {
            request.markComplete()
            throw error
        }
        return request
    }

    // MARK: helpers

    /// `rank` as an MPI rank of this communicator (or any source, when allowed).
    func peer(_ rank: Int, _ operation: String, allowAny: Bool = false) throws -> Int32 {
        if allowAny && rank == Communicator.anySource { return conclave_any_source() }
        guard (0..<size).contains(rank) else {
            throw TransportError.invalidArgument(operation: operation, message: "rank \(rank) is outside 0..<\(size)")
        }
        return Int32(rank)
    }

    func mpiTag(_ tag: Int, _ operation: String, allowAny: Bool = false) throws -> Int32 {
        if allowAny && tag == Communicator.anyTag { return conclave_any_tag() }
        guard (0...Communicator.maxTag).contains(tag) else {
            throw TransportError.invalidArgument(operation: operation, message: "tag \(tag) is outside 0...\(Communicator.maxTag)")
        }
        return Int32(tag)
    }

    /// Polls `MPI_Improbe` until a message matches or `timeout` seconds pass.
    private func pollMatched(from source: Int, tag: Int, timeout: Double, message: inout MPI_Message?, operation: String) throws -> MPI_Status {
        let op = "MPI_Improbe"
        let (s, t) = (try peer(source, op, allowAny: true), try mpiTag(tag, op, allowAny: true))
        guard timeout.isFinite, timeout >= 0 else {
            throw TransportError.invalidArgument(operation: operation, message: "timeout \(timeout) s is not a finite number ≥ 0")
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .nanoseconds(Int64(timeout * 1e9))
        var pause: UInt32 = 20  // microseconds, doubled up to 1 ms
        var status = MPI_Status()
        while true {
            var flag: Int32 = 0
            try check(MPI_Improbe(s, t, handle, &flag, &message, &status), op, peer: source)
            if flag != 0 { return status }
            if clock.now >= deadline {
                throw TransportError.timeout(peer: source, operation: operation, seconds: timeout)
            }
            usleep(pause)
            pause = min(pause * 2, 1_000)
        }
    }

    /// Receives the message `MPI_Mprobe`/`MPI_Improbe` matched.
    private func receiveMatched(_ message: inout MPI_Message?, _ probed: MPI_Status) throws -> (bytes: [UInt8], source: Int) {
        var status = probed
        let source = Int(status.MPI_SOURCE)
        var count: Int32 = 0
        try check(MPI_Get_count(&status, conclave_byte(), &count), "MPI_Get_count", peer: source)
        var bytes = [UInt8](repeating: 0, count: Int(count))
        try bytes.withUnsafeMutableBytes {
            try check(MPI_Mrecv($0.baseAddress, count, conclave_byte(), &message, &status), "MPI_Mrecv", peer: source)
        }
        return (bytes, source)
    }
}

/// A message waiting to be received.
public struct ProbeResult: Sendable, Hashable {
    public let source: Int
    public let tag: Int
    public let byteCount: Int

    init(_ status: MPI_Status, _ operation: String) throws {
        var s = status
        var count: Int32 = 0
        try check(MPI_Get_count(&s, conclave_byte(), &count), "MPI_Get_count", peer: Int(status.MPI_SOURCE))
        source = Int(status.MPI_SOURCE)
        tag = Int(status.MPI_TAG)
        byteCount = Int(count)
    }
}

/// Exclusive prefix sums of `counts` as MPI displacements.
func prefixSums(_ counts: [Int], _ operation: String) throws -> [Int32] {
    var displacements: [Int32] = []
    displacements.reserveCapacity(counts.count)
    var total = 0
    for c in counts {
        displacements.append(try mpiCount(total, operation, "displacement"))
        total += c
    }
    _ = try mpiCount(total, operation, "total count")
    return displacements
}
