/// A control message that could not be decoded or encoded. `rank` is the sending rank:
/// the MPI source when decoding, this rank when encoding.
public struct ControlPlaneError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The bytes are not a protobuf `Envelope`.
        case malformed
        /// The envelope's protocol version is not `ControlPlane.protocolVersion`.
        case unsupportedVersion
        /// The envelope carries no body this build knows.
        case missingBody
        /// The envelope's sender rank is not the rank it came from.
        case senderMismatch
        /// A field holds a value the protocol does not allow.
        case invalidValue
        /// A message this rank tried to send breaks the protocol's rules.
        case unencodable
    }

    public let kind: Kind
    public let rank: Int
    public let detail: String

    public init(_ kind: Kind, rank: Int, _ detail: String) {
        self.kind = kind
        self.rank = rank
        self.detail = detail
    }

    public var description: String {
        switch kind {
        case .unencodable: "cannot send control message from rank \(rank): \(detail)"
        default: "malformed control message from rank \(rank): \(detail)"
        }
    }
}
