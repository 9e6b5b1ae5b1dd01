import Foundation

#if canImport(Glibc)
import Glibc
#endif

// A client on a raw socket, for what URLSession would not send or show: heads as they come, and
// WebSocket frames after a switch.

/// A connection to 127.0.0.1:`port`, with a 10 s receive timeout.
public func connectLoopback(_ port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw POSIXError(.ECONNREFUSED)
    }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return fd
}

/// A client connection on a raw socket that reads a response head and then WebSocket frames.
public final class RawConnection {
    private var fd: Int32
    private var data: [UInt8] = []

    public init(port: Int) throws {
        self.fd = try connectLoopback(port)
    }

    deinit { self.close() }

    public func close() {
        if self.fd >= 0 { Glibc.close(self.fd) }
        self.fd = -1
    }

    public func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(self.fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw POSIXError(.EPIPE) }
            sent += count
        }
    }

    /// Reads more; `false` at the end of the stream.
    private func fill() throws -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let count = recv(self.fd, &buffer, buffer.count, 0)
        guard count >= 0 else { throw POSIXError(.ETIMEDOUT) }
        self.data += buffer[0..<count]
        return count > 0
    }

    private func take(_ count: Int) throws -> [UInt8] {
        while self.data.count < count {
            guard try self.fill() else { throw POSIXError(.ECONNRESET) }
        }
        defer { self.data.removeFirst(count) }
        return Array(self.data[0..<count])
    }

    /// A response head, without its final CRLF CRLF.
    public func readHead() throws -> String {
        while true {
            if let end = (0..<max(0, self.data.count - 3)).first(where: { self.data[$0..<$0 + 4] == [13, 10, 13, 10] }) {
                let head = String(decoding: self.data[0..<end], as: UTF8.self)
                self.data.removeFirst(end + 4)
                return head
            }
            guard try self.fill() else { throw POSIXError(.ECONNRESET) }
        }
    }

    /// The next `count` bytes (a body of known length).
    public func read(count: Int) throws -> [UInt8] {
        try self.take(count)
    }

    /// One unmasked frame from the server.
    public func readFrame() throws -> WebSocketWire.Frame {
        let start = try self.take(2)
        var length = Int(start[1] & 0x7F)
        if length == 126 {
            length = try self.take(2).reduce(0) { $0 << 8 | Int($1) }
        } else if length == 127 {
            length = try self.take(8).reduce(0) { $0 << 8 | Int($1) }
        }
        return WebSocketWire.Frame(opcode: start[0] & 0x0F, payload: try self.take(length))
    }

    /// Whether the stream ends with nothing more to read (within the socket's 10 s receive timeout).
    public func readsEnd() throws -> Bool {
        guard self.data.isEmpty else { return false }
        return try !self.fill()
    }
}

/// Frames of RFC 6455 §5.2 as a client writes them (masked) and reads them.
public enum WebSocketWire {
    public struct Frame: Equatable, Sendable {
        public var opcode: UInt8
        public var payload: [UInt8]

        public init(opcode: UInt8, payload: [UInt8]) {
            self.opcode = opcode
            self.payload = payload
        }
    }

    public static func maskedFrame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        var frame: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        frame += mask
        frame += payload.enumerated().map { $1 ^ mask[$0 % 4] }
        return frame
    }
}
