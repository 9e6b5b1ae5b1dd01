public import NIOCore

/// A header line of a head read by ``HTTPHead``: where its name, value and whole line lie in the head's
/// bytes, and what it is to a proxy.
public struct HTTPHeaderField: Equatable, Sendable {
    /// The headers a proxy treats specially; all others are ``other``.
    public enum Kind: UInt8, Sendable {
        case other
        case host
        case contentLength
        case transferEncoding
        /// `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, and any header `Connection` names
        /// (RFC 9110 §7.6.1): they describe one connection and are not forwarded.
        case hopByHop
        /// `Upgrade`, hop-by-hop as well, but forwarded with a protocol switch (``HTTPHead/upgrade``).
        case upgrade
        /// `Connection` itself, hop-by-hop as well.
        case connection
        case xForwardedFor
        case xForwardedProto
        case xForwardedHost
        case xRequestID
        case xLBLabBackend
        /// A `Content-Length` that is not forwarded: one beside `Transfer-Encoding` in a response
        /// (overridden by it), or a repeat of an equal one.
        case overriddenContentLength
    }

    public var kind: Kind
    /// The whole line, its CRLF included.
    public var line: Range<Int>
    public var name: Range<Int>
    /// The value without surrounding whitespace.
    public var value: Range<Int>
}

/// The head of an HTTP/1.x request or response, read strictly (RFC 9112 §2–§6) from bytes: its start
/// line, where each header lies, and what decides its framing and the connection's fate. Offsets are
/// from the start of ``bytes``, which holds the head and its final CRLF CRLF.
///
/// Strict means what a proxy needs to stay out of request smuggling: CRLF line ends only, no
/// whitespace before a header's colon, no folded lines, no control characters, a `Content-Length` of
/// digits only and equal when repeated, and in a request never both `Content-Length` and
/// `Transfer-Encoding`, nor a `Transfer-Encoding` whose last coding is not `chunked`, nor an HTTP/1.1
/// request without `Host`.
public struct HTTPHead: Sendable {
    /// The head's bytes.
    public var bytes: ByteBuffer
    /// 0 or 1, of HTTP/1.x.
    public var minorVersion: UInt8
    /// The request's method and target (empty ranges in a response).
    public var method: Range<Int> = 0..<0
    public var target: Range<Int> = 0..<0
    /// The response's status code (0 in a request).
    public var status = 0
    /// The end of the start line (where its CRLF begins).
    public var startLineEnd: Int
    /// How the body is delimited.
    public var framing = HTTPBodyFramer.Framing.none
    /// Whether the sender keeps the connection open after this message (its version's default, or
    /// what `Connection` says).
    public var keepAlive: Bool
    /// The `Host` value, if there is one.
    public var host: Range<Int>?
    /// The authority of a request target in absolute form (`http://api.example.test:8080/x`), without
    /// user info: the host the request is for, where its `Host` header does not count (RFC 9112
    /// §3.2.2). `nil` for a target in any other form.
    public var authority: Range<Int>?
    /// Whether an `X-Forwarded-For`, `-Proto`, `-Host` or `X-Request-Id` header is present.
    public var hasForwardedFor = false
    public var hasForwardedProto = false
    public var hasForwardedHost = false
    public var requestID: Range<Int>?
    /// The value of the `Upgrade` header of an HTTP/1.1 message whose `Connection` lists `upgrade`:
    /// the protocols a request offers to switch to, or the one a `101 Switching Protocols` response
    /// switches to (RFC 9110 §7.8). `nil` without both headers, and in HTTP/1.0, which has no switch.
    public var upgrade: Range<Int>?

    /// The longest head read.
    public static let maxBytes = 64 * 1024

    /// Reads a request head from the front of `buffer`, consuming it; `nil` until all of it has
    /// arrived. Its header lines go to `fields` (emptied first; kept by the caller to reuse).
    public static func readRequest(from buffer: inout ByteBuffer, fields: inout [HTTPHeaderField]) throws(HTTPMalformed) -> HTTPHead? {
        guard var head = try Self.cut(&buffer, isRequest: true) else { return nil }
        try head.readRequestLine()
        try head.readFields(into: &fields)
        // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request that lacks Host.
        guard head.host != nil || head.minorVersion == 0 else { throw HTTPMalformed("HTTP/1.1 request without Host") }
        try head.decideRequestFraming(fields)
        return head
    }

    /// Reads a response head from the front of `buffer`, consuming it; `nil` until all of it has
    /// arrived. `requestIsHEAD` says the response has no body whatever its headers say.
    public static func readResponse(
        from buffer: inout ByteBuffer,
        requestIsHEAD: Bool,
        fields: inout [HTTPHeaderField]
    ) throws(HTTPMalformed) -> HTTPHead? {
        guard var head = try Self.cut(&buffer, isRequest: false) else { return nil }
        try head.readStatusLine()
        try head.readFields(into: &fields)
        try head.decideResponseFraming(&fields, requestIsHEAD: requestIsHEAD)
        return head
    }

    /// Whether the message is a request of method `name` (upper case, as methods are).
    public func methodIs(_ name: StaticString) -> Bool {
        self.bytes.withUnsafeReadableBytes { bytes in
            let method = UnsafeRawBufferPointer(rebasing: bytes[self.method])
            return method.elementsEqual(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        }
    }

    /// The bytes of `range` as a string (a method, a target, a value).
    public func string(_ range: Range<Int>) -> String {
        self.bytes.getString(at: self.bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    // MARK: Reading

    private init(bytes: ByteBuffer) {
        self.bytes = bytes
        self.minorVersion = 1
        self.startLineEnd = 0
        self.keepAlive = true
    }

    private static func cut(_ buffer: inout ByteBuffer, isRequest: Bool) throws(HTTPMalformed) -> HTTPHead? {
        let end = buffer.withUnsafeReadableBytes { HTTPBytes.endOfHead($0) }
        guard let end else {
            if buffer.readableBytes > Self.maxBytes {
                throw HTTPMalformed(isRequest ? "request head over 64 KiB" : "response head over 64 KiB", isTooLarge: true)
            }
            // A head whose lines end in a bare LF never shows the CRLF CRLF that ends it: refused at
            // once rather than waited for until a timeout.
            if buffer.withUnsafeReadableBytes({ HTTPBytes.containsBareLF($0) }) { throw HTTPMalformed(Self.bareLF(isRequest: isRequest)) }
            return nil
        }
        guard end + 4 <= Self.maxBytes else {
            throw HTTPMalformed(isRequest ? "request head over 64 KiB" : "response head over 64 KiB", isTooLarge: true)
        }
        return HTTPHead(bytes: buffer.readSlice(length: end + 4)!)
    }

    private static func bareLF(isRequest: Bool) -> String {
        isRequest ? "bare LF in the request head (lines end with CRLF)" : "bare LF in the response head (lines end with CRLF)"
    }

    private mutating func readRequestLine() throws(HTTPMalformed) {
        let result: Result<(Range<Int>, Range<Int>, Range<Int>?, UInt8, Int), HTTPMalformed> = self.bytes.withUnsafeReadableBytes { bytes in
            var index = 0
            while index < bytes.count, HTTPBytes.isTokenCharacter(bytes[index]) { index += 1 }
            guard index > 0, index < bytes.count, bytes[index] == 0x20 else { return .failure(HTTPMalformed("bad request line")) }
            let method = 0..<index
            index += 1
            let targetStart = index
            while index < bytes.count, bytes[index] > 0x20, bytes[index] != 0x7F { index += 1 }
            guard index > targetStart, index + 11 <= bytes.count, bytes[index] == 0x20 else {
                return .failure(HTTPMalformed("bad request line"))
            }
            let target = targetStart..<index
            let version = UnsafeRawBufferPointer(rebasing: bytes[(index + 1)..<(index + 11)])
            guard HTTPBytes.startsWithHTTP1(version), version[7] == 0x30 || version[7] == 0x31,
                version[8] == 0x0D, version[9] == 0x0A
            else {
                return .failure(HTTPMalformed(version[8] == 0x0A ? Self.bareLF(isRequest: true) : "not an HTTP/1.0 or HTTP/1.1 request"))
            }
            let authority = HTTPBytes.absoluteFormAuthority(UnsafeRawBufferPointer(rebasing: bytes[target]))
                .map { (targetStart + $0.lowerBound)..<(targetStart + $0.upperBound) }
            // RFC 9112 §3.2: the origin form (/path), the absolute form (http://host/path), the asterisk
            // form for OPTIONS, or the authority form for CONNECT (which the proxy answers itself).
            if bytes[targetStart] != UInt8(ascii: "/"), authority == nil {
                let name = UnsafeRawBufferPointer(rebasing: bytes[method])
                let asterisk = target.count == 1 && bytes[targetStart] == UInt8(ascii: "*")
                guard (asterisk && name.elementsEqual("OPTIONS".utf8)) || name.elementsEqual("CONNECT".utf8) else {
                    return .failure(
                        HTTPMalformed(asterisk ? "the target * is for OPTIONS only" : "a request target is a path (/...) or an http(s) URL")
                    )
                }
            }
            return .success((method, target, authority, version[7] - 0x30, index + 9))
        }
        let (method, target, authority, minor, lineEnd) = try result.get()
        self.method = method
        self.target = target
        self.authority = authority
        self.minorVersion = minor
        self.startLineEnd = lineEnd
        self.keepAlive = minor == 1
    }

    private mutating func readStatusLine() throws(HTTPMalformed) {
        let result: Result<(UInt8, Int, Int), HTTPMalformed> = self.bytes.withUnsafeReadableBytes { bytes in
            guard bytes.count >= 14, HTTPBytes.startsWithHTTP1(bytes), bytes[7] == 0x30 || bytes[7] == 0x31, bytes[8] == 0x20 else {
                return .failure(HTTPMalformed("not an HTTP/1.x status line"))
            }
            var status = 0
            for index in 9..<12 {
                let digit = bytes[index] &- 0x30
                guard digit < 10 else { return .failure(HTTPMalformed("bad status code")) }
                status = status * 10 + Int(digit)
            }
            guard status >= 100 else { return .failure(HTTPMalformed("bad status code")) }
            var index = 12
            if bytes[index] == 0x20 {
                while index < bytes.count, HTTPBytes.isValueCharacter(bytes[index]) { index += 1 }
            }
            guard index + 1 < bytes.count, bytes[index] == 0x0D, bytes[index + 1] == 0x0A else {
                return .failure(HTTPMalformed(bytes[index] == 0x0A ? Self.bareLF(isRequest: false) : "bad status line"))
            }
            return .success((bytes[7] - 0x30, status, index))
        }
        let (minor, status, lineEnd) = try result.get()
        self.minorVersion = minor
        self.status = status
        self.startLineEnd = lineEnd
        self.keepAlive = minor == 1
    }

    /// Reads the header lines after the start line, and what `Connection`, `Host` and the forwarding
    /// headers say.
    private mutating func readFields(into fields: inout [HTTPHeaderField]) throws(HTTPMalformed) {
        fields.removeAll(keepingCapacity: true)
        let facts: Result<Facts, HTTPMalformed> = self.bytes.withUnsafeReadableBytes { bytes in
            var facts = Facts()
            var lineStart = self.startLineEnd + 2
            let end = bytes.count - 2  // the final CRLF
            while lineStart < end {
                var index = lineStart
                while index < end, HTTPBytes.isTokenCharacter(bytes[index]) { index += 1 }
                guard index > lineStart, index < end, bytes[index] == 0x3A else {
                    let reason = index == lineStart && (bytes[index] == 0x20 || bytes[index] == 0x09)
                        ? "folded header line" : "bad header name"
                    return .failure(HTTPMalformed(reason))
                }
                let name = lineStart..<index
                index += 1
                let valueStart = index
                while index < end, HTTPBytes.isValueCharacter(bytes[index]) { index += 1 }
                guard index + 1 < bytes.count, bytes[index] == 0x0D, bytes[index + 1] == 0x0A else {
                    let isRequest = self.status == 0
                    return .failure(HTTPMalformed(bytes[index] == 0x0A ? Self.bareLF(isRequest: isRequest) : "bad character in header value"))
                }
                var valueLow = valueStart
                var valueHigh = index
                while valueLow < valueHigh, bytes[valueLow] == 0x20 || bytes[valueLow] == 0x09 { valueLow += 1 }
                while valueHigh > valueLow, bytes[valueHigh - 1] == 0x20 || bytes[valueHigh - 1] == 0x09 { valueHigh -= 1 }
                let kind = Self.kind(of: UnsafeRawBufferPointer(rebasing: bytes[name]))
                let value = valueLow..<valueHigh
                // A repeat of an equal Content-Length is forwarded once (RFC 9112 §6.3 lets a recipient
                // replace the repeats with one value); a differing one is refused by `note`.
                let forwarded = kind == .contentLength && facts.contentLength != nil ? .overriddenContentLength : kind
                fields.append(HTTPHeaderField(kind: forwarded, line: lineStart..<(index + 2), name: name, value: value))
                if case .failure(let error) = facts.note(kind, value: UnsafeRawBufferPointer(rebasing: bytes[value]), at: value) {
                    return .failure(error)
                }
                lineStart = index + 2
            }
            if !facts.listed.isEmpty {
                // Headers `Connection` names are hop-by-hop too, unless they frame the message.
                for index in fields.indices where fields[index].kind == .other {
                    let name = UnsafeRawBufferPointer(rebasing: bytes[fields[index].name])
                    if facts.listed.contains(where: { HTTPBytes.equalIgnoringCase(UnsafeRawBufferPointer(rebasing: bytes[$0]), name) }) {
                        fields[index].kind = .hopByHop
                    }
                }
            }
            return .success(facts)
        }
        let read = try facts.get()
        if read.close { self.keepAlive = false } else if read.keepAlive { self.keepAlive = true }
        self.host = read.host
        self.hasForwardedFor = read.forwardedFor
        self.hasForwardedProto = read.forwardedProto
        self.hasForwardedHost = read.forwardedHost
        self.requestID = read.requestID
        self.upgrade = read.connectionUpgrade && self.minorVersion == 1 ? read.upgrade : nil
        self.contentLength = read.contentLength
        self.transferEncoding = read.transferEncoding
    }

    private var contentLength: Int?
    /// Whether `Transfer-Encoding` is present, and whether its last coding is `chunked`.
    private var transferEncoding: (present: Bool, chunked: Bool) = (false, false)

    private mutating func decideRequestFraming(_ fields: [HTTPHeaderField]) throws(HTTPMalformed) {
        if self.transferEncoding.present {
            guard self.contentLength == nil else { throw HTTPMalformed("both Content-Length and Transfer-Encoding") }
            guard self.minorVersion == 1 else { throw HTTPMalformed("Transfer-Encoding in an HTTP/1.0 request") }
            guard self.transferEncoding.chunked else { throw HTTPMalformed("Transfer-Encoding whose last coding is not chunked") }
            self.framing = .chunked
        } else if let length = self.contentLength {
            self.framing = length == 0 ? .none : .length(length)
        } else {
            self.framing = .none
        }
    }

    private mutating func decideResponseFraming(_ fields: inout [HTTPHeaderField], requestIsHEAD: Bool) throws(HTTPMalformed) {
        if self.transferEncoding.present && self.contentLength != nil {
            // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, which must not be forwarded.
            for index in fields.indices where fields[index].kind == .contentLength {
                fields[index].kind = .overriddenContentLength
            }
        }
        if requestIsHEAD || self.status < 200 || self.status == 204 || self.status == 304 {
            self.framing = .none
        } else if self.transferEncoding.present {
            self.framing = self.transferEncoding.chunked ? .chunked : .untilClose
        } else if let length = self.contentLength {
            self.framing = length == 0 ? .none : .length(length)
        } else {
            self.framing = .untilClose
        }
        if self.framing == .untilClose { self.keepAlive = false }
    }

    private static func kind(of name: UnsafeRawBufferPointer) -> HTTPHeaderField.Kind {
        switch name.count {
        case 2 where HTTPBytes.equalsLowercased(name, "te"): .hopByHop
        case 4 where HTTPBytes.equalsLowercased(name, "host"): .host
        case 7 where HTTPBytes.equalsLowercased(name, "upgrade"): .upgrade
        case 10 where HTTPBytes.equalsLowercased(name, "connection"): .connection
        case 10 where HTTPBytes.equalsLowercased(name, "keep-alive"): .hopByHop
        case 12 where HTTPBytes.equalsLowercased(name, "x-request-id"): .xRequestID
        case 14 where HTTPBytes.equalsLowercased(name, "content-length"): .contentLength
        case 15 where HTTPBytes.equalsLowercased(name, "x-forwarded-for"): .xForwardedFor
        case 15 where HTTPBytes.equalsLowercased(name, "x-lblab-backend"): .xLBLabBackend
        case 16 where HTTPBytes.equalsLowercased(name, "proxy-connection"): .hopByHop
        case 16 where HTTPBytes.equalsLowercased(name, "x-forwarded-host"): .xForwardedHost
        case 17 where HTTPBytes.equalsLowercased(name, "transfer-encoding"): .transferEncoding
        case 17 where HTTPBytes.equalsLowercased(name, "x-forwarded-proto"): .xForwardedProto
        default: .other
        }
    }
}

/// What the header lines of a head say, gathered as they are read.
private struct Facts {
    var close = false
    var keepAlive = false
    /// Header names `Connection` lists beyond `close` and `keep-alive`.
    var listed: [Range<Int>] = []
    var host: Range<Int>?
    var forwardedFor = false
    var forwardedProto = false
    var forwardedHost = false
    var requestID: Range<Int>?
    /// Whether `Connection` lists `upgrade`, and the first `Upgrade` value.
    var connectionUpgrade = false
    var upgrade: Range<Int>?
    var contentLength: Int?
    var transferEncoding: (present: Bool, chunked: Bool) = (false, false)

    mutating func note(_ kind: HTTPHeaderField.Kind, value: UnsafeRawBufferPointer, at range: Range<Int>) -> Result<Void, HTTPMalformed> {
        switch kind {
        case .host:
            guard self.host == nil else { return .failure(HTTPMalformed("more than one Host header")) }
            self.host = range
        case .contentLength:
            guard let length = HTTPBytes.decimal(value) else { return .failure(HTTPMalformed("bad Content-Length")) }
            guard self.contentLength == nil || self.contentLength == length else {
                return .failure(HTTPMalformed("Content-Length headers that disagree"))
            }
            self.contentLength = length
        case .transferEncoding:
            self.transferEncoding.present = true
            var last: UnsafeRawBufferPointer?
            HTTPBytes.forEachListElement(value) { last = $0 }
            // A later Transfer-Encoding line continues the list: its last coding is the one that counts.
            if let last { self.transferEncoding.chunked = HTTPBytes.equalsLowercased(last, "chunked") }
        case .connection:
            var offsets: [Range<Int>] = []
            let base = value.baseAddress!
            HTTPBytes.forEachListElement(value) { element in
                if HTTPBytes.equalsLowercased(element, "close") {
                    self.close = true
                } else if HTTPBytes.equalsLowercased(element, "keep-alive") {
                    self.keepAlive = true
                } else if HTTPBytes.equalsLowercased(element, "upgrade") {
                    self.connectionUpgrade = true
                } else {
                    let start = range.lowerBound + (element.baseAddress! - base)
                    offsets.append(start..<(start + element.count))
                }
            }
            self.listed += offsets
        case .xForwardedFor: self.forwardedFor = true
        case .xForwardedProto: self.forwardedProto = true
        case .xForwardedHost: self.forwardedHost = true
        case .xRequestID: if !value.isEmpty { self.requestID = range }
        case .upgrade: if self.upgrade == nil, !value.isEmpty { self.upgrade = range }
        case .other, .hopByHop, .xLBLabBackend, .overriddenContentLength: break
        }
        return .success(())
    }
}
