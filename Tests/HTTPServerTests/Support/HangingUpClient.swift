import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A client that really goes away: a plain TCP connection that sends one streaming request,
/// reads until `afterEvents` server-sent events have arrived, and closes the socket. (An HTTP
/// client library may keep a cancelled response's connection open to drain it for reuse,
/// which a server cannot tell from a slow reader.) Blocking socket calls run on a thread of
/// their own, not on Swift's cooperative pool.
enum HangingUpClient {
    struct Outcome: Sendable {
        let eventsSeen: Int
        /// The stream ended (`[DONE]`) before the hang-up: it was not cut mid-stream.
        let endedBeforeHangUp: Bool
    }

    static func stream(baseURL: String, path: String, body: Data, apiKey: String?, afterEvents count: Int) async -> Outcome {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: run(baseURL: baseURL, path: path, body: body, apiKey: apiKey, afterEvents: count)) }.start()
        }
    }

    private static func run(baseURL: String, path: String, body: Data, apiKey: String?, afterEvents count: Int) -> Outcome {
        guard let url = URL(string: baseURL), let port = url.port else { return Outcome(eventsSeen: 0, endedBeforeHangUp: true) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return Outcome(eventsSeen: 0, endedBeforeHangUp: true) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return Outcome(eventsSeen: 0, endedBeforeHangUp: true) }
        var head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\n"
        if let apiKey { head += "Authorization: Bearer \(apiKey)\r\n" }
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let request = Data(head.utf8) + body
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            received += buffer[..<n]
            let text = String(decoding: received, as: UTF8.self)
            let events = text.components(separatedBy: "data: ").count - 1
            if text.contains("data: [DONE]") { return Outcome(eventsSeen: events, endedBeforeHangUp: true) }
            if events >= count { return Outcome(eventsSeen: events, endedBeforeHangUp: false) }
        }
        return Outcome(eventsSeen: String(decoding: received, as: UTF8.self).components(separatedBy: "data: ").count - 1, endedBeforeHangUp: true)
    }
}
