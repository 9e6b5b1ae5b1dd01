import LBHTTP
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads HTTP/1.1 responses off a connection for the load generator: where each one ends, its status,
/// whether the connection stays open, and the backend named in `X-LBLab-Backend`.
///
/// The load generator's hot path reads tens of thousands of responses a second on one core, and NIO's
/// HTTP client pipeline (decoder, encoder, header values as `String`s, `HTTPPart` enums through
/// `NIOAny`) measured at several times the cost of the request itself (bench/RESULTS.md). This parser
/// does what wrk's does: it frames messages (RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304;
/// chunked; Content-Length; else until close) and reads the four headers that matter, without
/// allocating for the others.
struct HTTPResponseParser {
    /// What the caller learns from one call to ``parse(_:)``.
    enum Progress: Equatable {
        /// More bytes are needed.
        case needMoreData
        /// A whole response was read (its head is in ``head``); bytes after it stay in the buffer.
        case complete
    }

    /// The parts of a response head the load generator uses.
    struct Head: Equatable {
        var status: Int
        var keepAlive: Bool
        var backend: String?
    }

    /// A response the parser cannot frame.
    struct Malformed: Error, Equatable {
        var reason: String
    }

    private enum State: Equatable {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
    }

    /// The largest response head read.
    static let maxHeadBytes = 64 * 1024

    private var state = State.head
    /// Whether the request was HEAD (its response has no body whatever its headers say).
    var requestIsHEAD = false
    /// The head of the response being read, once it is complete.
    private(set) var head: Head?
    /// Body bytes of the response being read.
    private(set) var bodyBytes = 0

    /// Prepares for the next response on the connection.
    mutating func reset(requestIsHEAD: Bool) {
        self.state = .head
        self.requestIsHEAD = requestIsHEAD
        self.head = nil
        self.bodyBytes = 0
    }

    /// Consumes bytes from `buffer` up to the end of the current response.
    mutating func parse(_ buffer: inout ByteBuffer) throws(Malformed) -> Progress {
        while true {
            switch self.state {
            case .head:
                guard let head = try self.parseHead(&buffer) else { return .needMoreData }
                if (100..<200).contains(head.status) && head.status != 101 {
                    continue  // an interim response: the real one follows
                }
                self.head = head
                if self.requestIsHEAD || head.status == 204 || head.status == 304 || head.status == 101 {
                    return .complete
                }
                switch self.framing {
                case .chunked: self.state = .chunkSize
                case .length(let length): self.state = .fixedBody(remaining: length)
                case .untilClose:
                    self.state = .untilClose
                    self.head?.keepAlive = false
                }
            case .fixedBody(let remaining):
                let taken = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: taken)
                self.bodyBytes += taken
                if taken == remaining {
                    self.state = .head
                    return .complete
                }
                self.state = .fixedBody(remaining: remaining - taken)
                return .needMoreData
            case .chunkSize:
                guard let line = try self.readLine(&buffer) else { return .needMoreData }
                let size = try Self.chunkSize(line)
                self.state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let taken = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: taken)
                self.bodyBytes += taken
                guard taken == remaining else {
                    self.state = .chunkData(remaining: remaining - taken)
                    return .needMoreData
                }
                self.state = .chunkDataEnd
            case .chunkDataEnd:
                guard let line = try self.readLine(&buffer) else { return .needMoreData }
                guard line.isEmpty else { throw Malformed(reason: "chunk data longer than its size") }
                self.state = .chunkSize
            case .trailers:
                guard let line = try self.readLine(&buffer) else { return .needMoreData }
                if line.isEmpty {
                    self.state = .head
                    return .complete
                }
            case .untilClose:
                self.bodyBytes += buffer.readableBytes
                buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                return .needMoreData
            }
        }
    }

    /// Parses `bytes` after `pending`, what an earlier read left that the parser could not use yet (a
    /// partial head or chunk line), and keeps in `pending` what it cannot use of these: the bytes of a
    /// connection as its reads bring them.
    mutating func parse(_ bytes: inout ByteBuffer, after pending: inout ByteBuffer?) throws(Malformed) -> Progress {
        guard var merged = pending.take() else {
            return try self.parse(&bytes, keepingRestIn: &pending)
        }
        merged.writeBuffer(&bytes)
        return try self.parse(&merged, keepingRestIn: &pending)
    }

    private mutating func parse(_ bytes: inout ByteBuffer, keepingRestIn pending: inout ByteBuffer?) throws(Malformed) -> Progress {
        let progress = try self.parse(&bytes)
        if progress == .needMoreData, bytes.readableBytes > 0 {
            // A copy of the few bytes left, not the read's whole buffer, which its reader reuses.
            pending = ByteBuffer(bytes: bytes.readableBytesView)
        }
        return progress
    }

    /// The connection closed: completes a response delimited by the close.
    mutating func connectionClosed() -> Bool {
        guard self.state == .untilClose else { return false }
        self.state = .head
        return true
    }

    // MARK: Head

    private enum Framing {
        case chunked
        case length(Int)
        case untilClose
    }

    private var framing = Framing.untilClose

    private mutating func parseHead(_ buffer: inout ByteBuffer) throws(Malformed) -> Head? {
        let result = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(Malformed) in try Self.readHead(bytes) }
        }
        switch result {
        case .failure(let error):
            throw error
        case .success(nil):
            return nil
        case .success(.some(let (head, framing, consumed))):
            buffer.moveReaderIndex(forwardBy: consumed)
            self.framing = framing
            return head
        }
    }

    /// Reads the head at the start of `bytes` in one pass, a line at a time (`memchr` finds each line's
    /// LF): its fields, its framing and the bytes it takes with its blank line; `nil` while the blank
    /// line has not arrived. Only CRLF ends a line, as RFC 9112 §2.2 asks of a sender.
    private static func readHead(_ bytes: UnsafeRawBufferPointer) throws(Malformed) -> (Head, Framing, Int)? {
        // Status line: HTTP/1.x SP 3DIGIT SP reason
        guard let base = bytes.baseAddress, bytes.count >= 12 else {
            guard "HTTP/1.".utf8.prefix(bytes.count).elementsEqual(bytes.prefix(7)) else {
                throw Malformed(reason: "not an HTTP/1.x status line")
            }
            return nil
        }
        guard HTTPBytes.startsWithHTTP1(bytes), bytes[8] == 0x20 else {
            throw Malformed(reason: "not an HTTP/1.x status line")
        }
        let minor = bytes[7]
        var status = 0
        for index in 9..<12 {
            let digit = bytes[index] &- 0x30
            guard digit < 10 else { throw Malformed(reason: "bad status code") }
            status = status * 10 + Int(digit)
        }
        var keepAlive = minor != 0x30  // HTTP/1.1 keeps the connection unless told otherwise
        var framing = Framing.untilClose
        var backend: String?
        guard var lineStart = Self.nextLineStart(base, bytes.count, from: 12) else {
            return try Self.incomplete(bytes)
        }
        while true {
            guard let next = Self.nextLineStart(base, bytes.count, from: lineStart) else {
                return try Self.incomplete(bytes)
            }
            let lineEnd = next - 2
            if lineEnd == lineStart {  // the blank line: the head is complete
                return (Head(status: status, keepAlive: keepAlive, backend: backend), framing, next)
            }
            let line = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<lineEnd])
            lineStart = next
            guard let colon = line.firstIndex(of: 0x3A) else { throw Malformed(reason: "header line without a colon") }
            let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
            let value = HTTPBytes.trimmed(UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]))
            switch name.count {
            case 14 where HTTPBytes.equalsLowercased(name, "content-length"):
                guard case .untilClose = framing else { continue }  // chunked wins over a length
                var length = 0
                for byte in value {
                    let digit = byte &- 0x30
                    guard digit < 10, length < Int.max / 10 else { throw Malformed(reason: "bad Content-Length") }
                    length = length * 10 + Int(digit)
                }
                guard !value.isEmpty else { throw Malformed(reason: "empty Content-Length") }
                framing = .length(length)
            case 17 where HTTPBytes.equalsLowercased(name, "transfer-encoding"):
                if Self.containsLowercased(value, "chunked") { framing = .chunked }
            case 10 where HTTPBytes.equalsLowercased(name, "connection"):
                if Self.containsLowercased(value, "close") {
                    keepAlive = false
                } else if Self.containsLowercased(value, "keep-alive") {
                    keepAlive = true
                }
            case 15 where HTTPBytes.equalsLowercased(name, "x-lblab-backend"):
                backend = String(decoding: value, as: UTF8.self)
            default:
                continue
            }
        }
    }

    /// A head that has not ended in `bytes`: wait for more, unless it is already too large.
    private static func incomplete(_ bytes: UnsafeRawBufferPointer) throws(Malformed) -> (Head, Framing, Int)? {
        guard bytes.count <= Self.maxHeadBytes else { throw Malformed(reason: "response head over 64 KiB") }
        return nil
    }

    /// Where the line after the one starting at `start` begins (just past its CRLF), or `nil` when its
    /// CRLF has not arrived. A bare LF is part of the line.
    private static func nextLineStart(_ base: UnsafeRawPointer, _ count: Int, from start: Int) -> Int? {
        var from = start
        while from < count {
            guard let found = memchr(base + from, 0x0A, count - from) else { return nil }
            let lf = UnsafeRawPointer(found) - base
            if lf > start && base.load(fromByteOffset: lf - 1, as: UInt8.self) == 0x0D {
                return lf + 1
            }
            from = lf + 1
        }
        return nil
    }

    /// Whether `bytes`, lowercased, contain `lowercase` (ASCII).
    private static func containsLowercased(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard bytes.count >= count else { return false }
        for start in 0...(bytes.count - count)
        where HTTPBytes.equalsLowercased(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + count)]), lowercase) {
            return true
        }
        return false
    }

    // MARK: Lines

    /// The next CRLF-terminated line (without the CRLF), consumed; `nil` until it has arrived.
    private func readLine(_ buffer: inout ByteBuffer) throws(Malformed) -> [UInt8]? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: 0x0A) else {
            if view.count > 4_096 { throw Malformed(reason: "chunk line over 4 KiB") }
            return nil
        }
        let lineEnd = newline > view.startIndex && view[newline - 1] == 0x0D ? newline - 1 : newline
        let line = Array(view[view.startIndex..<lineEnd])
        buffer.moveReaderIndex(forwardBy: newline - view.startIndex + 1)
        return line
    }

    private static func chunkSize(_ line: [UInt8]) throws(Malformed) -> Int {
        var size = 0
        var digits = 0
        for byte in line {
            let value: UInt8
            switch byte {
            case 0x30...0x39: value = byte - 0x30
            case 0x41...0x46: value = byte - 0x41 + 10
            case 0x61...0x66: value = byte - 0x61 + 10
            case 0x3B, 0x20, 0x09: // chunk extension or whitespace: the size is over
                return try Self.checkedSize(size, digits)
            default: throw Malformed(reason: "bad chunk size")
            }
            guard size < Int.max >> 4 else { throw Malformed(reason: "chunk size too large") }
            size = size << 4 | Int(value)
            digits += 1
        }
        return try Self.checkedSize(size, digits)
    }

    private static func checkedSize(_ size: Int, _ digits: Int) throws(Malformed) -> Int {
        guard digits > 0 else { throw Malformed(reason: "empty chunk size") }
        return size
    }
}
