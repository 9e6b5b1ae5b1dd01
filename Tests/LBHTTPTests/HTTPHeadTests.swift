import LBHTTP
import NIOCore
import Testing

@Suite("HTTP/1.1 heads read from bytes")
struct HTTPHeadTests {
    private func request(_ text: String) throws(HTTPMalformed) -> (HTTPHead?, [HTTPHeaderField], ByteBuffer) {
        var buffer = ByteBuffer(string: text)
        var fields: [HTTPHeaderField] = []
        let head = try HTTPHead.readRequest(from: &buffer, fields: &fields)
        return (head, fields, buffer)
    }

    private func response(_ text: String, head requestIsHEAD: Bool = false) throws(HTTPMalformed) -> (HTTPHead, [HTTPHeaderField]) {
        var buffer = ByteBuffer(string: text)
        var fields: [HTTPHeaderField] = []
        let head = try HTTPHead.readResponse(from: &buffer, requestIsHEAD: requestIsHEAD, fields: &fields)
        return (head!, fields)
    }

    private func reason(_ text: String) -> String? {
        do {
            _ = try self.request(text)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test("a request's line, headers and framing; the bytes after the head stay in the buffer")
    func request() throws {
        let (read, fields, rest) = try self.request(
            "POST /api/x?y=1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nX-Request-Id: r1\r\nAccept:*/*\r\n\r\nhello"
        )
        let head = try #require(read)
        #expect(head.string(head.method) == "POST" && head.string(head.target) == "/api/x?y=1")
        #expect(head.methodIs("POST") && !head.methodIs("GET"))
        #expect(head.minorVersion == 1 && head.keepAlive)
        #expect(head.framing == .length(5))
        #expect(head.host.map(head.string) == "a.test" && head.requestID.map(head.string) == "r1")
        #expect(fields.map(\.kind) == [.host, .contentLength, .xRequestID, .other])
        #expect(head.string(fields[3].name) == "Accept" && head.string(fields[3].value) == "*/*")
        #expect(head.string(fields[3].line) == "Accept:*/*\r\n")
        #expect(String(buffer: rest) == "hello")
    }

    @Test("a target in absolute form has its authority read, without user info; other forms have none")
    func authority() throws {
        let cases: [(String, String?)] = [
            ("HTTP://user:pw@API.test:8080/x?y", "API.test:8080"),
            ("https://a.test?q=/p", "a.test"),
            ("http://a.test", "a.test"),
            ("http:///x", ""),
            ("/http://a.test/", nil),
            ("*", nil),
        ]
        for (target, authority) in cases {
            let head = try #require(try self.request("OPTIONS \(target) HTTP/1.1\r\nHost: h\r\n\r\n").0)
            #expect(head.authority.map(head.string) == authority, "\(target)")
        }
        #expect(try #require(try self.request("GET / HTTP/1.1\r\nHost: http://x\r\n\r\n").0).authority == nil)
    }

    @Test("nothing is read until the head is whole")
    func incomplete() throws {
        let (head, _, rest) = try self.request("GET / HTTP/1.1\r\nHost: a\r\n")
        #expect(head == nil && rest.readableBytes == 25)
    }

    @Test("keep-alive by version and Connection; headers Connection names are hop-by-hop, framing ones are not")
    func connection() throws {
        let (old, _, _) = try self.request("GET / HTTP/1.0\r\n\r\n")
        #expect(old?.keepAlive == false)
        let (oldKept, _, _) = try self.request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        #expect(oldKept?.keepAlive == true)
        let (closing, fields, _) = try self.request(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret, content-length\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Other: 2\r\nContent-Length: 0\r\n\r\n"
        )
        #expect(closing?.keepAlive == false)
        #expect(fields.map(\.kind) == [.host, .connection, .hopByHop, .hopByHop, .hopByHop, .other, .contentLength])
    }

    @Test("a protocol switch is asked for by Upgrade with Connection listing upgrade, in HTTP/1.1 only (RFC 9110 7.8)")
    func upgrade() throws {
        let (asked, fields, _) = try self.request(
            "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nUpgrade: other\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        let head = try #require(asked)
        #expect(head.upgrade.map(head.string) == "websocket", "the first Upgrade line")
        #expect(head.keepAlive)
        #expect(fields.map(\.kind) == [.host, .connection, .upgrade, .upgrade, .other])
        let (unlisted, unlistedFields, _) = try self.request("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
        #expect(unlisted?.upgrade == nil, "Upgrade without Connection: upgrade asks for nothing")
        #expect(unlistedFields.map(\.kind) == [.host, .upgrade])
        let (bare, _, _) = try self.request("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n")
        #expect(bare?.upgrade == nil, "Connection: upgrade without an Upgrade header")
        let (old, _, _) = try self.request("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        #expect(old?.upgrade == nil, "HTTP/1.0 has no protocol switch")
        let (switched, _) = try self.response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        #expect(switched.upgrade.map(switched.string) == "websocket" && switched.framing == .none)
    }

    @Test("chunked requests; smuggling shapes refused with the reason")
    func framing() throws {
        let (chunked, _, _) = try self.request("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n\r\n")
        #expect(chunked?.framing == .chunked)
        #expect(reason("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") == "both Content-Length and Transfer-Encoding")
        #expect(reason("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n") == "Transfer-Encoding whose last coding is not chunked")
        #expect(reason("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == "Transfer-Encoding in an HTTP/1.0 request")
        #expect(reason("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n") == "Content-Length headers that disagree")
        #expect(reason("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n") == "bad Content-Length")
        #expect(reason("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n") == nil)
    }

    @Test("malformed heads are refused with the reason")
    func malformed() {
        #expect(reason("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == "bad header name")
        #expect(reason("GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n") == "folded header line")
        #expect(reason("GET / HTTP/1.1\r\nX-A: 1\u{01}\r\n\r\n") == "bad character in header value")
        #expect(reason("GET / HTTP/1.1\r\nX-A: 1\nX-B: 2\r\n\r\n") == "bare LF in the request head (lines end with CRLF)")
        #expect(reason("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == "more than one Host header")
        #expect(reason("GET  / HTTP/1.1\r\n\r\n") == "bad request line")
        #expect(reason("GET / HTTP/2.0\r\n\r\n") == "not an HTTP/1.0 or HTTP/1.1 request")
        #expect(reason("G(T / HTTP/1.1\r\n\r\n") == "bad request line")
        #expect(reason(String(repeating: "a", count: HTTPHead.maxBytes + 1)) == "request head over 64 KiB")
    }

    @Test("a request target is a path or an http(s) URL; * only with OPTIONS, host:port only with CONNECT (RFC 9112 3.2)")
    func targetForms() {
        #expect(reason("GET /a?b HTTP/1.1\r\nHost: a\r\n\r\n") == nil)
        #expect(reason("GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n") == nil)
        #expect(reason("GET HTTPS://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n") == nil)
        #expect(reason("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") == nil)
        #expect(reason("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n") == nil, "refused later, with a 501")
        #expect(reason("GET * HTTP/1.1\r\nHost: a\r\n\r\n") == "the target * is for OPTIONS only")
        #expect(reason("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n") == "a request target is a path (/...) or an http(s) URL")
        #expect(reason("GET ftp://a.test/ HTTP/1.1\r\nHost: a\r\n\r\n") == "a request target is a path (/...) or an http(s) URL")
        #expect(reason("GET a.test:80 HTTP/1.1\r\nHost: a\r\n\r\n") == "a request target is a path (/...) or an http(s) URL")
    }

    @Test("an HTTP/1.1 request must have a Host, an HTTP/1.0 one need not")
    func hostRequired() throws {
        #expect(reason("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n") == "HTTP/1.1 request without Host")
        #expect(reason("GET http://a.test/ HTTP/1.1\r\n\r\n") == "HTTP/1.1 request without Host")
        #expect(try self.request("GET / HTTP/1.0\r\n\r\n").0 != nil)
    }

    @Test("a head with bare LF line ends is refused once it shows one, not waited on; so is a response's")
    func bareLF() throws {
        // Complete to a reader that accepts LF: it never shows the CRLF CRLF that ends a head.
        #expect(reason("GET / HTTP/1.1\nHost: a\n\n") == "bare LF in the request head (lines end with CRLF)")
        #expect(reason("GET / HTTP/1.1\nHost: a\r\n\r\n") == "bare LF in the request head (lines end with CRLF)")
        #expect(reason("GET / HTTP/1.1\r\nHost: a\n") == "bare LF in the request head (lines end with CRLF)")
        #expect(reason("\nGET / HTTP/1.1\r\n") == "bare LF in the request head (lines end with CRLF)")
        let (partial, _, _) = try self.request("GET / HTTP/1.1\r\nHost: a\r\n")
        #expect(partial == nil, "CRLF line ends so far: waits for the rest")
        #expect(throws: HTTPMalformed("bare LF in the response head (lines end with CRLF)")) { try self.response("HTTP/1.1 200 OK\nContent-Length: 0\n\n") }
        #expect(throws: HTTPMalformed("bare LF in the response head (lines end with CRLF)")) { try self.response("HTTP/1.1 200 OK\nX: 1\r\n\r\n") }
    }

    @Test("a repeated, equal Content-Length is read once and its repeat not forwarded")
    func repeatedLength() throws {
        let (head, fields, _) = try self.request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n")
        #expect(head?.framing == .length(3))
        #expect(fields.map(\.kind) == [.host, .contentLength, .overriddenContentLength])
        let (response, responseFields) = try self.response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n")
        #expect(response.framing == .length(2) && responseFields.map(\.kind) == [.contentLength, .overriddenContentLength])
    }

    @Test("a head refused for its size alone says so, for a 431")
    func tooLarge() throws {
        let huge = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "b", count: HTTPHead.maxBytes))\r\n\r\n"
        #expect(throws: HTTPMalformed("request head over 64 KiB", isTooLarge: true)) { try self.request(huge) }
        #expect(throws: HTTPMalformed("request head over 64 KiB", isTooLarge: true)) { try self.request(String(huge.dropLast(4))) }
        #expect(throws: HTTPMalformed("bad header name", isTooLarge: false)) { try self.request("GET / HTTP/1.1\r\nHost : a\r\n\r\n") }
    }

    @Test("the HTTP/1. prefix of a start line: each of its seven bytes is checked, and a shorter buffer is not one")
    func versionPrefix() {
        let prefix = Array("HTTP/1.".utf8)
        #expect(Array("HTTP/1.1 200 OK".utf8).withUnsafeBytes { HTTPBytes.startsWithHTTP1($0) })
        #expect(prefix.withUnsafeBytes { HTTPBytes.startsWithHTTP1($0) })
        #expect(!Array(prefix.dropLast()).withUnsafeBytes { HTTPBytes.startsWithHTTP1($0) })
        for index in prefix.indices {
            var wrong = prefix
            wrong[index] ^= 0x20  // another letter case, or another character
            #expect(!wrong.withUnsafeBytes { HTTPBytes.startsWithHTTP1($0) }, "byte \(index) changed")
        }
        #expect(reason("GET / HTTQ/1.1\r\n\r\n") == "not an HTTP/1.0 or HTTP/1.1 request")
        #expect(throws: HTTPMalformed.self) { try self.response("HTTP/2.0 200 OK\r\n\r\n") }
    }

    @Test("a response's framing: HEAD, 1xx, 204 and 304 have no body; chunked overrides a length; else until close")
    func responses() throws {
        #expect(try self.response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n").0.framing == .length(10))
        #expect(try self.response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", head: true).0.framing == .none)
        #expect(try self.response("HTTP/1.1 100 Continue\r\n\r\n").0.status == 100)
        #expect(try self.response("HTTP/1.1 204 No Content\r\n\r\n").0.framing == .none)
        #expect(try self.response("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").0.framing == .none)
        let (both, fields) = try self.response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(both.framing == .chunked && fields.map(\.kind) == [.overriddenContentLength, .transferEncoding])
        let untilClose = try self.response("HTTP/1.1 200\r\nServer: x\r\n\r\n").0
        #expect(untilClose.framing == .untilClose && !untilClose.keepAlive && untilClose.status == 200)
        #expect(try self.response("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").0.keepAlive == false)
        #expect(throws: HTTPMalformed("bad status code")) { try self.response("HTTP/1.1 2x0 OK\r\n\r\n") }
        #expect(throws: HTTPMalformed("not an HTTP/1.x status line")) { try self.response("ICY 200 OK\r\n\r\n") }
    }
}

@Suite("HTTP/1.1 body framing")
struct HTTPBodyFramerTests {
    /// Feeds `text` to a framer in pieces of `piece` bytes; returns the bytes it claimed.
    private func claimed(_ framing: HTTPBodyFramer.Framing, _ text: String, piece: Int) throws -> (Int, Bool) {
        var framer = HTTPBodyFramer(framing)
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count && !framer.isComplete {
            let end = min(bytes.count, offset + piece)
            let taken = try bytes[offset..<end].withUnsafeBytes { try framer.scan($0) }
            offset += taken
            if taken < end - (offset - taken) { break }
        }
        return (offset, framer.isComplete)
    }

    @Test("a chunked body with an extension and trailers ends at the same byte however it arrives", arguments: [1, 2, 7, 1000])
    func chunked(piece: Int) throws {
        let body = "5;name=x\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 15\r\n\r\n"
        let (taken, complete) = try self.claimed(.chunked, body + "GET / HTTP/1.1\r\n", piece: piece)
        #expect(complete && taken == body.utf8.count)
    }

    @Test("a length ends after its bytes; until-close never ends; none takes nothing")
    func lengths() throws {
        #expect(try self.claimed(.length(5), "helloGET", piece: 3) == (5, true))
        #expect(try self.claimed(.untilClose, "hello", piece: 2) == (5, false))
        #expect(try self.claimed(.none, "hello", piece: 2) == (0, true))
    }

    @Test("chunk data longer than its size, a bad size or a bare LF is refused")
    func malformed() {
        #expect(throws: HTTPMalformed("chunk data longer than its size")) { try self.claimed(.chunked, "2\r\nabc\r\n0\r\n\r\n", piece: 100) }
        #expect(throws: HTTPMalformed("bad chunk size")) { try self.claimed(.chunked, "x\r\n", piece: 100) }
        #expect(throws: HTTPMalformed("empty chunk size")) { try self.claimed(.chunked, "\r\n", piece: 100) }
        #expect(throws: HTTPMalformed("chunk-size line without CRLF")) { try self.claimed(.chunked, "2\r\r\n", piece: 100) }
        #expect(throws: HTTPMalformed("chunk size too large")) { try self.claimed(.chunked, "FFFFFFFFFFFFFFFFF\r\n", piece: 100) }
    }
}
