internal import CMPI

/// A failed transport operation. Every case names the operation and, where there is one,
/// the peer rank, so a log line says which link broke.
public enum TransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An MPI call returned an error; `message` is MPI's own text (MPI_Error_string).
    case mpi(operation: String, peer: Int?, code: Int, message: String)
    /// Nothing arrived from `peer` (nil: any rank) within `seconds`.
    case timeout(peer: Int?, operation: String, seconds: Double)
    /// A message was larger than the buffer it was received into; it has been consumed.
    case truncated(operation: String, peer: Int, capacity: Int, received: Int)
    /// The caller passed something MPI would misread (count mismatch, negative count, …).
    case invalidArgument(operation: String, message: String)
    /// MPI cannot be used in this process (finalised, or without the thread level we need).
    case unavailable(String)

    public var description: String {
        switch self {
        case .mpi(let op, let peer, let code, let message):
            "\(op)\(Self.describe(peer)) failed: \(message) (MPI error \(code))"
        case .timeout(let peer, let op, let seconds):
            "\(op)\(Self.describe(peer)) timed out after \(seconds) s: the peer may be dead or stuck"
        case .truncated(let op, let peer, let capacity, let received):
            "\(op) from rank \(peer): message of \(received) elements does not fit the \(capacity)-element buffer"
        case .invalidArgument(let op, let message):
            "\(op): \(message)"
        case .unavailable(let message):
            "MPI unavailable: \(message)"
        }
    }

    private static func describe(_ peer: Int?) -> String {
        guard let peer else { return "" }
        return peer == Communicator.anySource ? " with any rank" : " with rank \(peer)"
    }
}

/// MPI's text for an error code.
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(conclave_max_error_string()) + 1)
    var length: Int32 = 0
    guard MPI_Error_string(code, &buffer, &length) == conclave_success() else { return "unknown MPI error" }
    return cString(buffer, length: Int(length))
}

/// The text in a C character buffer: `length` characters, or up to the first NUL.
func cString(_ buffer: [CChar], length: Int? = nil) -> String {
    let chars: ArraySlice<CChar> = if let length { buffer.prefix(length) } else { buffer.prefix { $0 != 0 } }
    return String(decoding: chars.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Throws `TransportError.mpi` unless `rc` is MPI_SUCCESS.
@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String, peer: Int? = nil) throws {
    if rc != conclave_success() {
        throw TransportError.mpi(operation: operation(), peer: peer, code: Int(rc), message: mpiErrorString(rc))
    }
}

/// `value` as an MPI count, or an error naming the operation.
func mpiCount(_ value: Int, _ operation: @autoclosure () -> String, _ what: @autoclosure () -> String) throws -> Int32 {
    guard value >= 0, let c = Int32(exactly: value) else {
        throw TransportError.invalidArgument(operation: operation(), message: "\(what()) \(value) is not an MPI count (0...\(Int32.max))")
    }
    return c
}
