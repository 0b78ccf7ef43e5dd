import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 of a file, read in large blocks (a shard of a real model is many GB).
enum FileDigest {
    static let blockBytes = 8 << 20

    /// Lowercase hex, as `sha256sum` prints it.
    static func sha256(of url: URL) throws(FileDigestError) -> String {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileDigestError(file: url.path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        // The kernel reads ahead further for a file read once from start to end.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        var hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: blockBytes, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let count = read(fd, buffer.baseAddress, blockBytes)
            if count < 0 {
                if errno == EINTR { continue }
                throw FileDigestError(file: url.path, reason: String(cString: strerror(errno)))
            }
            if count == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

struct FileDigestError: Error, CustomStringConvertible {
    let file: String
    let reason: String
    var description: String { "cannot read \(file) to check its SHA-256: \(reason)" }
}
