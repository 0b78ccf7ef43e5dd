internal import CMPI

/// The element types MPI moves without conversion.
public enum MPIElementKind: Sendable, Hashable {
    case float32, float64, int32, int64, uint8
    /// 16-bit words; bf16 values travel as their bit patterns.
    case uint16

    var datatype: MPI_Datatype {
        switch self {
        case .float32: conclave_float()
        case .float64: conclave_double()
        case .int32: conclave_int32()
        case .int64: conclave_int64()
        case .uint8: conclave_byte()
        case .uint16: conclave_uint16()
        }
    }
}

/// A type whose buffers MPI can send as they are.
public protocol MPIElement {
    static var mpiElementKind: MPIElementKind { get }
}

extension MPIElement {
    static var mpiDatatype: MPI_Datatype { mpiElementKind.datatype }
}

extension Float: MPIElement { public static var mpiElementKind: MPIElementKind { .float32 } }
extension Double: MPIElement { public static var mpiElementKind: MPIElementKind { .float64 } }
extension Int32: MPIElement { public static var mpiElementKind: MPIElementKind { .int32 } }
extension Int64: MPIElement { public static var mpiElementKind: MPIElementKind { .int64 } }
extension UInt8: MPIElement { public static var mpiElementKind: MPIElementKind { .uint8 } }
extension UInt16: MPIElement { public static var mpiElementKind: MPIElementKind { .uint16 } }

/// A non-blocking send or receive in flight.
///
/// Data buffers: a request from `startSend(bytes:…)` owns a copy of the bytes; for the
/// float variants the caller keeps the buffer alive (and, for receives, untouched) until
/// the request completes. Dropping an incomplete request cancels a receive and waits for
/// a send, so memory it owns is never freed under MPI.
/// Use a request from one thread at a time.
public final class TransferRequest {
    var request: MPI_Request? = conclave_request_null()
    public let operation: String
    public let peer: Int
    private let datatype: MPI_Datatype
    /// Elements sent, for a send; nil for a receive (the count comes from the status).
    private let sendCount: Int?
    private var owned: UnsafeMutableRawBufferPointer?
    private var completedCount: Int?

    init(operation: String, peer: Int, datatype: MPI_Datatype, sendCount: Int?, owned: UnsafeMutableRawBufferPointer? = nil) {
        self.operation = operation
        self.peer = peer
        self.datatype = datatype
        self.sendCount = sendCount
        self.owned = owned
    }

    /// Whether the transfer has finished.
    public var isComplete: Bool { completedCount != nil }

    /// Blocks until the transfer finishes; returns the number of elements moved (for a
    /// receive, how many arrived).
    @discardableResult
    public func wait() throws -> Int {
        if let completedCount { return completedCount }
        var status = MPI_Status()
        let rc = MPI_Wait(&request, &status)
        return try finish(rc, &status)
    }

    /// Whether the transfer has finished, without blocking.
    public func test() throws -> Bool {
        if completedCount != nil { return true }
        var status = MPI_Status()
        var flag: Int32 = 0
        let rc = MPI_Test(&request, &flag, &status)
        if rc == conclave_success() && flag == 0 { return false }
        _ = try finish(rc, &status)
        return true
    }

    private func finish(_ rc: Int32, _ status: inout MPI_Status) throws -> Int {
        markComplete()
        try check(rc, operation, peer: peer)
        if let sendCount {
            completedCount = sendCount
        } else {
            var count: Int32 = 0
            try check(MPI_Get_count(&status, datatype, &count), "MPI_Get_count", peer: peer)
            completedCount = Int(count)
        }
        return completedCount!
    }

    /// Marks the request finished (or never started) and frees what it owns.
    func markComplete() {
        completedCount = completedCount ?? 0
        owned?.deallocate()
        owned = nil
    }

    deinit {
        if completedCount == nil, request != conclave_request_null() {
            if sendCount == nil { MPI_Cancel(&request) }
            MPI_Wait(&request, conclave_status_ignore())
        }
        owned?.deallocate()
    }
}

/// A non-blocking all-to-all in flight, from `Communicator.startAllToAllV`.
///
/// The request owns its count and displacement arrays. The caller keeps the send and
/// receive buffers alive until `wait()` returns (and does not touch the receive buffer
/// before then). Dropping an incomplete request waits for it.
/// Use a request from one thread at a time.
public final class AllToAllRequest {
    var request: MPI_Request? = conclave_request_null()
    /// sendCounts, sendDisplacements, recvCounts, recvDisplacements, pinned for MPI.
    let arrays: UnsafeMutableBufferPointer<Int32>
    private var done = false

    init(size: Int) {
        arrays = .allocate(capacity: max(4 * size, 1))
        arrays.initialize(repeating: 0)
    }

    func slice(_ i: Int, size: Int) -> UnsafeMutablePointer<Int32> { arrays.baseAddress! + i * size }

    /// Whether the exchange has finished.
    public var isComplete: Bool { done }

    /// Blocks until every rank's data has arrived in the receive buffer.
    public func wait() throws {
        guard !done else { return }
        let rc = MPI_Wait(&request, conclave_status_ignore())
        done = true
        try check(rc, "MPI_Ialltoallv")
    }

    /// Whether the exchange has finished, without blocking.
    public func test() throws -> Bool {
        guard !done else { return true }
        var flag: Int32 = 0
        let rc = MPI_Test(&request, &flag, conclave_status_ignore())
        if rc == conclave_success() && flag == 0 { return false }
        done = true
        try check(rc, "MPI_Ialltoallv")
        return true
    }

    deinit {
        if !done, request != conclave_request_null() { MPI_Wait(&request, conclave_status_ignore()) }
        arrays.deallocate()
    }
}
