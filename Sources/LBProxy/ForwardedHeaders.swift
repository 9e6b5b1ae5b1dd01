public import LBCore
public import LBHTTP
public import NIOCore

/// The heads a proxy rewrites between client and backend: hop-by-hop headers removed (RFC 9110
/// §7.6.1), `X-Forwarded-For`, `-Proto` and `-Host` set, an `X-Request-Id` passed on or given, and
/// `X-LBLab-Backend` on the response.
///
/// Heads are rewritten as bytes: the lines kept are copied as they came, in runs, and the proxy's own
/// lines follow them. Bodies pass through untouched, so the framing headers (`Content-Length`,
/// `Transfer-Encoding`) stay, even when `Connection` names them.
///
/// `X-Forwarded-*` headers are believed only from ``trustedProxies`` (the load generator on loopback, a
/// proxy in front); from anyone else they are replaced, so a client cannot choose the address an
/// `ip-hash` service hashes or a log records.
public struct ForwardedHeaders: Sendable {
    /// Sources whose `X-Forwarded-*` headers are believed.
    public let trustedProxies: [AddressRange]

    /// A rewriter believing `trustedProxies`.
    public init(trustedProxies: [AddressRange]) {
        self.trustedProxies = trustedProxies
    }

    /// Whether `address` is a trusted proxy.
    public func isTrusted(_ address: String) -> Bool {
        self.trustedProxies.contains { $0.contains(address) }
    }

    /// Whether the address written in `utf8` is a trusted proxy.
    func isTrusted(utf8 address: UnsafeRawBufferPointer) -> Bool {
        self.trustedProxies.contains { $0.contains(utf8: address) }
    }

    /// The client's address: the socket `peer`'s, unless the peer is trusted, in which case the
    /// rightmost address of `X-Forwarded-For` that is not itself a trusted proxy (or the leftmost, when
    /// all are).
    ///
    /// The list is read in place, from its end, and only the address chosen becomes a `String`: the
    /// load generator sends the header with every request.
    public func clientAddress(peer: String, peerIsTrusted: Bool, head: HTTPHead, fields: [HTTPHeaderField]) -> String {
        guard peerIsTrusted, head.hasForwardedFor else { return peer }
        return head.bytes.withUnsafeReadableBytes { bytes in
            var leftmost: UnsafeRawBufferPointer?
            for field in fields.reversed() where field.kind == .xForwardedFor {
                var end = field.value.upperBound
                while true {
                    var start = end
                    while start > field.value.lowerBound, bytes[start - 1] != UInt8(ascii: ",") { start -= 1 }
                    let entry = HTTPBytes.trimmed(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
                    if !entry.isEmpty {
                        if !self.isTrusted(utf8: entry) { return String(decoding: entry, as: UTF8.self) }
                        leftmost = entry
                    }
                    guard start > field.value.lowerBound else { break }
                    end = start - 1
                }
            }
            return leftmost.map { String(decoding: $0, as: UTF8.self) } ?? peer
        }
    }

    /// Writes the request `head` (with its `fields`) as it goes to a backend: HTTP/1.1, hop-by-hop
    /// headers gone, the `X-Forwarded-*` set for a client at socket address `peer`, and `requestID` (in
    /// hex) as `X-Request-Id` when the request has none. A request that asks for a protocol switch
    /// (``HTTPHead/upgrade``) keeps its `Upgrade` and asks the backend with `Connection: upgrade`.
    /// An HTTP/1.0 request without `Host` goes with `serverAuthority` as its `Host`, since it goes as
    /// HTTP/1.1, which must have one (RFC 9112 §3.2): the address the client reached, which is what
    /// the request was for (§3.3).
    public func writeRequestHead(
        _ head: HTTPHead,
        fields: [HTTPHeaderField],
        peer: String,
        peerIsTrusted: Bool,
        requestID: UInt64,
        serverAuthority: String? = nil,
        into out: inout ByteBuffer
    ) {
        let trusted = peerIsTrusted
        let source = head.bytes
        Self.copy(0..<head.target.upperBound, of: source, into: &out)
        out.writeStaticString(" HTTP/1.1\r\n")
        // A target in absolute form names the host: a proxy sends it as Host in place of the client's
        // (RFC 9112 §3.2.2), and the backend hears of it as X-Forwarded-Host too.
        let authority = head.authority.flatMap { $0.isEmpty ? nil : $0 }
        let upgrading = head.upgrade != nil
        Self.copyFields(of: source, fields, into: &out) { kind in
            switch kind {
            case .connection, .hopByHop, .xForwardedFor, .overriddenContentLength: false
            case .upgrade: upgrading
            case .xForwardedProto, .xForwardedHost: trusted
            case .xRequestID: head.requestID != nil
            case .host: authority == nil
            case .other, .contentLength, .transferEncoding, .xLBLabBackend: true
            }
        }
        if let authority {
            out.writeStaticString("Host: ")
            Self.copy(authority, of: source, into: &out)
            out.writeStaticString("\r\n")
        } else if head.host == nil {
            out.writeStaticString("Host: ")
            out.writeString(serverAuthority ?? "")
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("X-Forwarded-For: ")
        if trusted && head.hasForwardedFor {
            for field in fields where field.kind == .xForwardedFor && !field.value.isEmpty {
                Self.copy(field.value, of: source, into: &out)
                out.writeStaticString(", ")
            }
        }
        out.writeString(peer)
        if !(trusted && head.hasForwardedProto) {
            out.writeStaticString("\r\nX-Forwarded-Proto: http")
        }
        if !(trusted && head.hasForwardedHost), let host = authority ?? head.host {
            out.writeStaticString("\r\nX-Forwarded-Host: ")
            Self.copy(host, of: source, into: &out)
        }
        if head.requestID == nil {
            out.writeStaticString("\r\nX-Request-Id: ")
            Self.writeHex(requestID, into: &out)
        }
        if upgrading {
            // The switch is asked of the backend in turn: `Upgrade` went with the lines kept, and
            // `Connection` says it is for this hop too (RFC 9110 §7.8).
            out.writeStaticString("\r\nConnection: upgrade")
        }
        out.writeStaticString("\r\n\r\n")
    }

    /// What a response's `Connection` header says to the client.
    public enum ConnectionHeader: Sendable {
        /// Nothing: HTTP/1.1's default, keep-alive.
        case none
        /// `Connection: close`.
        case close
        /// `Connection: keep-alive`, which an HTTP/1.0 client needs to keep the connection.
        case keepAlive
        /// `Connection: upgrade`, with the response's `Upgrade` kept: a `101 Switching Protocols`
        /// to a request that asked for the switch.
        case upgrade
    }

    /// Writes the response `head` (with its `fields`) as it goes to the client: HTTP/1.1, hop-by-hop
    /// headers gone (`Upgrade` kept for ``ConnectionHeader/upgrade``), `X-LBLab-Backend: backend`, and
    /// `connection`.
    public static func writeResponseHead(
        _ head: HTTPHead,
        fields: [HTTPHeaderField],
        backend: String,
        connection: ConnectionHeader,
        into out: inout ByteBuffer
    ) {
        let source = head.bytes
        out.writeStaticString("HTTP/1.1")
        Self.copy(8..<head.startLineEnd, of: source, into: &out)
        out.writeStaticString("\r\n")
        let switching = connection == .upgrade
        Self.copyFields(of: source, fields, into: &out) { kind in
            switch kind {
            case .connection, .hopByHop, .xLBLabBackend, .overriddenContentLength: false
            case .upgrade: switching
            default: true
            }
        }
        out.writeStaticString("X-LBLab-Backend: ")
        out.writeString(backend)
        switch connection {
        case .none: break
        case .close: out.writeStaticString("\r\nConnection: close")
        case .keepAlive: out.writeStaticString("\r\nConnection: keep-alive")
        case .upgrade: out.writeStaticString("\r\nConnection: upgrade")
        }
        out.writeStaticString("\r\n\r\n")
    }

    /// Copies the lines of `fields` whose kind `keep` accepts, consecutive ones in one copy.
    private static func copyFields(
        of source: ByteBuffer,
        _ fields: [HTTPHeaderField],
        into out: inout ByteBuffer,
        keep: (HTTPHeaderField.Kind) -> Bool
    ) {
        // Copied from the head's bytes in place: a `ByteBufferView` per run cost a retain, a release and
        // an optional's outlined destroy each.
        source.withUnsafeReadableBytes { bytes in
            var run: Range<Int>?
            for field in fields {
                if keep(field.kind) {
                    run = (run?.lowerBound ?? field.line.lowerBound)..<field.line.upperBound
                } else if let kept = run {
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[kept]))
                    run = nil
                }
            }
            if let kept = run {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[kept]))
            }
        }
    }

    /// Copies `range` of `source`'s readable bytes to the end of `out`.
    private static func copy(_ range: Range<Int>, of source: ByteBuffer, into out: inout ByteBuffer) {
        source.withUnsafeReadableBytes { bytes in
            _ = out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range]))
        }
    }

    private static func writeHex(_ value: UInt64, into out: inout ByteBuffer) {
        let digits: StaticString = "0123456789abcdef"
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: 16) { bytes in
            for index in 0..<16 {
                bytes[index] = digits.utf8Start[Int(value >> (60 - 4 * UInt64(index)) & 0xF)]
            }
            return 16
        }
    }
}
