import LBCore
import LBHTTP
import NIOCore
import Testing

@testable import LBProxy

@Suite("Forwarded headers")
struct ForwardedHeadersTests {
    let rewriter = ForwardedHeaders(trustedProxies: AddressRange.loopback)

    /// Reads `text` as a request head and returns it as it would go to a backend from `peer`, through a
    /// listener at `127.0.0.1:8080`.
    private func forwarded(_ text: String, peer: String, requestID: UInt64 = 0xab) throws -> String {
        var buffer = ByteBuffer(string: text)
        var fields: [HTTPHeaderField] = []
        let head = try #require(try HTTPHead.readRequest(from: &buffer, fields: &fields))
        return String(buffer: rewriter.forwarded(head, fields: fields, peer: peer, requestID: requestID))
    }

    /// The response head `text` read, with its header lines.
    private func responseHead(_ text: String) throws -> (HTTPHead, [HTTPHeaderField]) {
        var buffer = ByteBuffer(string: text)
        var fields: [HTTPHeaderField] = []
        return (try #require(try HTTPHead.readResponse(from: &buffer, requestIsHEAD: false, fields: &fields)), fields)
    }

    private func client(_ text: String, peer: String) throws -> String {
        var buffer = ByteBuffer(string: text)
        var fields: [HTTPHeaderField] = []
        let head = try #require(try HTTPHead.readRequest(from: &buffer, fields: &fields))
        return rewriter.clientAddress(peer: peer, peerIsTrusted: rewriter.isTrusted(peer), head: head, fields: fields)
    }

    @Test("hop-by-hop headers go, including those Connection names; end-to-end and framing ones stay")
    func hopByHop() throws {
        let out = try forwarded(
            "POST /p HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\n"
                + "Content-Length: 3\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\nCookie: a=1\r\n\r\n",
            peer: "192.0.2.1"
        )
        #expect(
            out == "POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nAccept: */*\r\nCookie: a=1\r\n"
                + "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a.test\r\nX-Request-Id: 00000000000000ab\r\n\r\n"
        )
    }

    @Test("a request asking for a protocol switch keeps Upgrade and asks the backend with Connection: upgrade; one that does not, loses it")
    func upgrade() throws {
        let asked = try forwarded(
            "GET /chat HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
            peer: "192.0.2.1"
        )
        #expect(
            asked == "GET /chat HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n"
                + "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a.test\r\nX-Request-Id: 00000000000000ab\r\n"
                + "Connection: upgrade\r\n\r\n"
        )
        let old = try forwarded("GET /chat HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", peer: "192.0.2.1")
        #expect(!old.contains("pgrade"), "HTTP/1.0 has no switch: \(old)")
    }

    @Test("an HTTP/1.0 request without Host goes on as HTTP/1.1 with the address the client reached as Host (RFC 9112 3.2, 3.3)")
    func http10WithoutHost() throws {
        let out = try forwarded("GET /old HTTP/1.0\r\nAccept: */*\r\n\r\n", peer: "192.0.2.1")
        #expect(
            out == "GET /old HTTP/1.1\r\nAccept: */*\r\nHost: 127.0.0.1:8080\r\n"
                + "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Request-Id: 00000000000000ab\r\n\r\n"
        )
    }

    @Test("a target in absolute form goes on as it came, with its authority as Host and X-Forwarded-Host instead of the client's Host")
    func absoluteForm() throws {
        let out = try forwarded("GET http://user@API.test:8080/x?y HTTP/1.1\r\nHost: other.test\r\nAccept: */*\r\n\r\n", peer: "192.0.2.1")
        #expect(
            out == "GET http://user@API.test:8080/x?y HTTP/1.1\r\nAccept: */*\r\nHost: API.test:8080\r\n"
                + "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: API.test:8080\r\nX-Request-Id: 00000000000000ab\r\n\r\n"
        )
        let origin = try forwarded("GET /http://x.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n", peer: "192.0.2.1")
        #expect(origin.contains("\r\nHost: a.test\r\n") && origin.contains("X-Forwarded-Host: a.test\r\n"), "\(origin)")
    }

    @Test("from a trusted proxy, X-Forwarded-For is extended and its client believed")
    func trustedPeer() throws {
        let request = "GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Request-Id: r-1\r\n\r\n"
        #expect(try client(request, peer: "127.0.0.1") == "203.0.113.7")
        let out = try forwarded(request, peer: "127.0.0.1")
        #expect(
            out == "GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: https\r\nX-Request-Id: r-1\r\n"
                + "X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\nX-Forwarded-Host: a.test\r\n\r\n"
        )
    }

    @Test("from anyone else, X-Forwarded-* are replaced: a client cannot pick its hashed address")
    func untrustedPeer() throws {
        let request = "GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Host: evil.test\r\n\r\n"
        #expect(try client(request, peer: "192.0.2.44") == "192.0.2.44")
        let out = try forwarded(request, peer: "192.0.2.44", requestID: 0x0123_4567_89ab_cdef)
        #expect(
            out == "GET / HTTP/1.1\r\nHost: a.test\r\n"
                + "X-Forwarded-For: 192.0.2.44\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a.test\r\nX-Request-Id: 0123456789abcdef\r\n\r\n"
        )
    }

    @Test("the client is the rightmost untrusted hop; several header lines read as one list")
    func chain() throws {
        let request = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.9\r\nX-Forwarded-For: 127.0.0.2\r\n\r\n"
        #expect(try client(request, peer: "::1") == "203.0.113.9")
        #expect(try client("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.5, 127.0.0.6\r\n\r\n", peer: "127.0.0.1") == "127.0.0.5")
        #expect(try client("GET / HTTP/1.1\r\nHost: a\r\n\r\n", peer: "127.0.0.1") == "127.0.0.1")
        #expect(try forwarded(request, peer: "127.0.0.1").contains("X-Forwarded-For: 198.51.100.1, 203.0.113.9, 127.0.0.2, 127.0.0.1\r\n"))
    }

    @Test("X-Forwarded-For entries are read without their spaces and tabs; empty ones and text that is no address count as they did")
    func chainEntries() throws {
        #expect(try client("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: \t, 203.0.113.9 ,\t127.0.0.3 ,,\r\n\r\n", peer: "127.0.0.1") == "203.0.113.9")
        #expect(try client("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: unknown, 127.0.0.1\r\n\r\n", peer: "127.0.0.1") == "unknown")
        #expect(try client("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 2001:db8::7, ::1\r\n\r\n", peer: "::1") == "2001:db8::7")
        #expect(try client("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: ::1,127.0.0.9\r\n\r\n", peer: "127.0.0.1") == "::1")
        #expect(try client("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: , ,\r\n\r\n", peer: "127.0.0.1") == "127.0.0.1")
        #expect(try client("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For:\r\nX-Forwarded-For: 198.51.100.3\r\n\r\n", peer: "127.0.0.1") == "198.51.100.3")
    }

    @Test("a response loses its hop-by-hop headers and a backend's own X-LBLab-Backend, and names the backend")
    func response() throws {
        let (head, fields) = try responseHead(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nX-LBLab-Backend: spoof\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nServer: t\r\n\r\nok"
        )
        for (connection, line) in [(ForwardedHeaders.ConnectionHeader.none, ""), (.close, "\r\nConnection: close"), (.keepAlive, "\r\nConnection: keep-alive")] {
            var out = ByteBuffer()
            ForwardedHeaders.writeResponseHead(head, fields: fields, backend: "b1", connection: connection, into: &out)
            #expect(String(buffer: out) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: t\r\nX-LBLab-Backend: b1\(line)\r\n\r\n")
        }
    }

    @Test("a 101 to a request that asked for the switch keeps Upgrade and says Connection: upgrade")
    func switching() throws {
        let (head, fields) = try responseHead(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\n"
        )
        var out = ByteBuffer()
        ForwardedHeaders.writeResponseHead(head, fields: fields, backend: "b1", connection: .upgrade, into: &out)
        #expect(
            String(buffer: out)
                == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\nX-LBLab-Backend: b1\r\nConnection: upgrade\r\n\r\n"
        )
    }
}

extension ForwardedHeaders {
    /// `head` as it goes to a backend from `peer`, through a listener at `127.0.0.1:8080`.
    func forwarded(_ head: HTTPHead, fields: [HTTPHeaderField], peer: String, requestID: UInt64) -> ByteBuffer {
        var out = ByteBuffer()
        self.writeRequestHead(
            head,
            fields: fields,
            peer: peer,
            peerIsTrusted: self.isTrusted(peer),
            requestID: requestID,
            serverAuthority: "127.0.0.1:8080",
            into: &out
        )
        return out
    }
}
