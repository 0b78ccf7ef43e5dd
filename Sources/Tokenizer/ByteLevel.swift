/// GPT-2's reversible map between bytes and printable Unicode scalars, which
/// lets byte-level BPE vocabularies be stored as JSON text: printable Latin-1
/// bytes map to themselves, the other 68 bytes to U+0100 onwards.
enum ByteLevel {
    static let scalarOfByte: [Unicode.Scalar] = {
        var scalars = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if isPrintable(UInt8(byte)) {
                scalars[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                scalars[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return scalars
    }()

    static let byteOfScalar: [Unicode.Scalar: UInt8] = {
        var bytes: [Unicode.Scalar: UInt8] = [:]
        for (byte, scalar) in scalarOfByte.enumerated() { bytes[scalar] = UInt8(byte) }
        return bytes
    }()

    private static func isPrintable(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }

    /// The text's UTF-8 bytes, each written as its printable scalar.
    static func encode(_ text: some StringProtocol) -> String {
        var result = String.UnicodeScalarView()
        for byte in text.utf8 { result.append(scalarOfByte[Int(byte)]) }
        return String(result)
    }

    /// The bytes a token stands for. As in Hugging Face's ByteLevel decoder, a
    /// token with any scalar outside the table (an added token such as
    /// `<｜User｜>`) stands for its own UTF-8 text.
    static func decode(_ token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            guard let byte = byteOfScalar[scalar] else { return Array(token.utf8) }
            bytes.append(byte)
        }
        return bytes
    }
}
