import LBCore
import NIOCore

/// The bytes of every request of a run but the few that change per request (its id, the client's
/// address, the key), serialized once.
///
/// Header names and values were checked when the flags were read (no CR, LF or NUL can be in them), so
/// writing them out directly is safe, and it costs a copy instead of building an `HTTPHeaders` value
/// and encoding it on every request.
struct RequestTemplate {
    private let prefix: [UInt8]
    private let body: [UInt8]
    /// Whether the method is HEAD (its responses have no body).
    let isHEAD: Bool

    init(configuration: LoadConfiguration) {
        var text = "\(configuration.method) \(configuration.target.path) HTTP/1.1\r\n"
        // A `Host` among the headers replaces loadgen's own, as curl's and wrk's do. There is no
        // `User-Agent` unless one is given, as with wrk: the target would spend time on it for nothing
        // the experiment records (nginx, sniffing it for browsers, spent an eighth of its user-space
        // instructions for a request on it; bench/RESULTS.md).
        let given = Set(configuration.headers.map { $0.name.lowercased() })
        if !given.contains("host") { text += "Host: \(configuration.target.hostHeader)\r\n" }
        for header in configuration.headers {
            text += "\(header.name): \(header.value)\r\n"
        }
        if !configuration.body.isEmpty || ["POST", "PUT", "PATCH"].contains(configuration.method) {
            text += "Content-Length: \(configuration.body.count)\r\n"
        }
        text += "X-Request-Id: "
        self.prefix = Array(text.utf8)
        self.body = configuration.body
        self.isHEAD = configuration.method == "HEAD"
    }

    /// Request body bytes.
    var bodyCount: Int { self.body.count }

    /// Writes the request `id` from client address `clientIP`, with `key` in `X-LBLab-Key` if given, into
    /// `buffer` in place of what it held (a connection reuses one buffer: once the socket has taken a
    /// request, its storage is free for the next).
    func write(id: Int64, clientIP: String, key: Int?, into buffer: inout ByteBuffer) {
        buffer.clear(minimumCapacity: self.prefix.count + self.body.count + 96)
        buffer.writeBytes(self.prefix)
        Self.writeDecimal(id, into: &buffer)
        buffer.writeStaticString("\r\nX-Forwarded-For: ")
        buffer.writeString(clientIP)
        if let key {
            buffer.writeStaticString("\r\nX-LBLab-Key: ")
            Self.writeDecimal(Int64(key), into: &buffer)
        }
        buffer.writeStaticString("\r\n\r\n")
        buffer.writeBytes(self.body)
    }

    /// Writes `value` in decimal into `buffer`: the digits go straight in, where `String(value)` would
    /// format a string first, on every request.
    static func writeDecimal(_ value: Int64, into buffer: inout ByteBuffer) {
        var magnitude = value.magnitude
        if value < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for UInt64's 20 digits
        withUnsafeMutableBytes(of: &digits) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: digits[start...]))
        }
    }
}

extension LoadConfiguration {
    /// Why a header named `name` (in lower case) cannot be among ``headers``, or `nil` when it can:
    /// ``RequestTemplate`` writes these per request, or they follow from other settings, and a second
    /// copy would make the request malformed or its record wrong. `Host` can: it replaces loadgen's
    /// own. Kept beside the template that writes them; a test checks that every
    /// header it writes is here.
    public static func headerLoadgenWrites(_ name: String, keys: Bool) -> String? {
        switch name {
        case "x-request-id": "every request gets its own id"
        case "x-forwarded-for": "every client sends its own address"
        case "x-lblab-key" where keys: "-keys gives every request its key"
        case "content-length", "transfer-encoding": "the body's length comes from -body or -body-file"
        case "connection": "connections are kept alive and closed by loadgen"
        default: nil
        }
    }
}
