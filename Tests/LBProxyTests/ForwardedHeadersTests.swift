import LBCore
import NIOHTTP1
import Testing

@testable import LBProxy

@Suite("Forwarded headers")
struct ForwardedHeadersTests {
    let rewriter = ForwardedHeaders(trustedProxies: AddressRange.loopback)

    @Test("hop-by-hop headers go, including those Connection names; end-to-end ones stay")
    func hopByHop() {
        var headers = HTTPHeaders([
            ("Host", "a.test"), ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"),
            ("X-Secret", "1"), ("Transfer-Encoding", "chunked"), ("TE", "trailers"), ("Upgrade", "h2c"),
            ("Proxy-Connection", "keep-alive"), ("Trailer", "X-Sum"), ("Accept", "*/*"), ("Cookie", "a=1"),
        ])
        ForwardedHeaders.removeHopByHop(&headers)
        #expect(headers.map(\.name) == ["Host", "Accept", "Cookie"])
    }

    @Test("from a trusted proxy, X-Forwarded-For is extended and its client believed")
    func trustedPeer() {
        var headers = HTTPHeaders([("Host", "a.test"), ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")])
        #expect(rewriter.clientAddress(peer: "127.0.0.1", headers: headers) == "203.0.113.7")
        let id = rewriter.prepareRequest(&headers, peer: "127.0.0.1", requestID: "r-1")
        #expect(headers["X-Forwarded-For"] == ["203.0.113.7, 127.0.0.1"])
        #expect(headers["X-Forwarded-Proto"] == ["https"], "a trusted proxy's scheme is kept")
        #expect(headers["X-Forwarded-Host"] == ["a.test"])
        #expect(id == "r-1" && headers["X-Request-Id"] == ["r-1"])
    }

    @Test("from anyone else, X-Forwarded-* are replaced: a client cannot pick its hashed address")
    func untrustedPeer() {
        var headers = HTTPHeaders([("Host", "a.test"), ("X-Forwarded-For", "10.9.9.9"), ("X-Forwarded-Host", "evil.test")])
        #expect(rewriter.clientAddress(peer: "192.0.2.44", headers: headers) == "192.0.2.44")
        rewriter.prepareRequest(&headers, peer: "192.0.2.44", requestID: "r-2")
        #expect(headers["X-Forwarded-For"] == ["192.0.2.44"])
        #expect(headers["X-Forwarded-Proto"] == ["http"] && headers["X-Forwarded-Host"] == ["a.test"])
    }

    @Test("the client is the rightmost untrusted hop; several header lines read as one list")
    func chain() {
        let headers = HTTPHeaders([("X-Forwarded-For", "198.51.100.1, 203.0.113.9"), ("X-Forwarded-For", "127.0.0.2")])
        #expect(rewriter.clientAddress(peer: "::1", headers: headers) == "203.0.113.9")
        let allTrusted = HTTPHeaders([("X-Forwarded-For", "127.0.0.5, 127.0.0.6")])
        #expect(rewriter.clientAddress(peer: "127.0.0.1", headers: allTrusted) == "127.0.0.5")
        #expect(rewriter.clientAddress(peer: "127.0.0.1", headers: HTTPHeaders()) == "127.0.0.1")
    }

    @Test("an X-Request-Id is passed on; one is given when missing")
    func requestID() {
        var given = HTTPHeaders([("X-Request-Id", "abc")])
        #expect(rewriter.prepareRequest(&given, peer: "127.0.0.1", requestID: "unused") == "abc")
        #expect(given["X-Request-Id"] == ["abc"])
        var missing = HTTPHeaders()
        #expect(rewriter.prepareRequest(&missing, peer: "127.0.0.1", requestID: "new-1") == "new-1")
        #expect(missing["X-Request-Id"] == ["new-1"] && !missing.contains(name: "X-Forwarded-Host"))
    }
}
