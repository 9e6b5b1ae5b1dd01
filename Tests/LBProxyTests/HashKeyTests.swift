import LBConfig
import LBCore
import LBHTTP
import NIOCore
import Testing

@testable import LBProxy

@Suite("Hash keys of requests")
struct HashKeyTests {
    /// The hash `key` gives the request `text` from a client whose address hashes to 7.
    private func hash(_ key: Service.HashKey, _ text: String) throws -> UInt64? {
        var buffer = ByteBuffer(string: text)
        var fields: [HTTPHeaderField] = []
        let head = try #require(try HTTPHead.readRequest(from: &buffer, fields: &fields))
        return key.hash(of: head, fields: fields, clientKey: 7)
    }

    @Test("a cookie's value, wherever it stands among the cookies and Cookie headers, without the spaces around it")
    func cookie() throws {
        let key = Service.HashKey.cookie("session")
        let abc = StableHash.hash("abc")
        for request in [
            "GET / HTTP/1.1\r\nHost: a\r\nCookie: session=abc\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nCookie: a=1; session=abc; b=2\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\ncookie: a=1;session = abc ;\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nCOOKIE: a=1\r\nCookie: \tsession=abc\r\n\r\n",
        ] {
            #expect(try hash(key, request) == abc, "\(request)")
        }
        #expect(try hash(key, "GET / HTTP/1.1\r\nHost: a\r\nCookie: session=a=b\r\n\r\n") == StableHash.hash("a=b"), "the first = splits")
    }

    @Test("no key when the cookie is missing, empty, or only part of another's name")
    func cookieMissing() throws {
        let key = Service.HashKey.cookie("session")
        for request in [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nCookie: session=; a=1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nCookie: xsession=abc; sessionx=abc; session\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Cookie: session=abc\r\n\r\n",
        ] {
            #expect(try hash(key, request) == nil, "\(request)")
        }
    }

    @Test("a header's value, any case of its name; the path; the client's address")
    func others() throws {
        let request = "GET /a/b?c HTTP/1.1\r\nHost: a\r\nx-lblab-key: 42\r\n\r\n"
        #expect(try hash(.header("X-LBLab-Key"), request) == StableHash.hash("42"))
        #expect(try hash(.header("X-Other"), request) == nil)
        #expect(try hash(.path, request) == StableHash.hash("/a/b?c"))
        #expect(try hash(.clientIP, request) == 7)
    }
}
