/// The control plane's wire format: every control message travels as one protobuf
/// `conclave.v1.Envelope` (see `Sources/CProtobufC/proto/conclave/control.proto`).
public enum ControlPlane {
    /// Bumped whenever a schema change is not wire-compatible; ranks reject other versions.
    public static let protocolVersion: UInt32 = 1
}

extension ControlMessage {
    /// The message in an envelope from `senderRank`, packed for the wire.
    /// Throws `ControlPlaneError` (kind `.unencodable`) when the message breaks a rule the
    /// receiver would reject it for, or a value does not fit its wire type.
    public func encode(senderRank: Int) throws(ControlPlaneError) -> [UInt8] {
        do throws(ValueError) {
            try validate(sender: senderRank)
            return try Wire.pack(self, senderRank: senderRank)
        } catch {
            throw ControlPlaneError(.unencodable, rank: senderRank, "\(kind): \(error.reason)")
        }
    }

    /// Unpacks and validates a message that MPI received from `rank`.
    public static func decode(_ bytes: [UInt8], from rank: Int) throws(ControlPlaneError) -> ControlMessage {
        let message = try Wire.unpack(bytes, from: rank)
        do throws(ValueError) {
            try message.validate(sender: rank)
        } catch {
            throw ControlPlaneError(.invalidValue, rank: rank, "\(message.kind): \(error.reason)")
        }
        return message
    }
}
