import NIOCore
import Testing

@testable import LBLoad

@Suite("HTTP response framing")
struct HTTPResponseParserTests {
    /// Feeds `response` in pieces of `piece` bytes; returns the head and body size of each complete
    /// response, in order.
    func parse(_ response: String, piece: Int = .max, head: Bool = false) throws -> [(HTTPResponseParser.Head, Int)] {
        var parser = HTTPResponseParser()
        parser.reset(requestIsHEAD: head)
        var results: [(HTTPResponseParser.Head, Int)] = []
        let bytes = Array(response.utf8)
        var pending = ByteBuffer()
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + piece)
            pending.writeBytes(bytes[offset..<end])
            offset = end
            while pending.readableBytes > 0, try parser.parse(&pending) == .complete {
                results.append((parser.head!, parser.bodyBytes))
                parser.reset(requestIsHEAD: head)
            }
        }
        if parser.connectionClosed() {
            results.append((parser.head!, parser.bodyBytes))
        }
        return results
    }

    static let pieces = [1, 2, 3, 7, 64, Int.max]

    @Test("Content-Length framing, whatever the pieces the bytes arrive in", arguments: pieces)
    func contentLength(piece: Int) throws {
        let two = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-LBLab-Backend: b2\r\n\r\nhelloHTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
        let results = try parse(two, piece: piece)
        #expect(results.count == 2)
        #expect(results[0].0 == .init(status: 200, keepAlive: true, backend: "b2") && results[0].1 == 5)
        #expect(results[1].0 == .init(status: 503, keepAlive: true, backend: nil) && results[1].1 == 0)
    }

    @Test("chunked framing with extensions and trailers", arguments: pieces)
    func chunked(piece: Int) throws {
        let response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 99\r\n\r\n"
            + "5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n"
            + "HTTP/1.1 204 No Content\r\n\r\n"
        let results = try parse(response, piece: piece)
        #expect(results.map(\.1) == [31, 0])
        #expect(results.map(\.0.status) == [200, 204])
    }

    @Test("no body for HEAD, 204 and 304, whatever the headers say; 1xx is skipped")
    func noBody() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", head: true).map(\.1) == [0])
        #expect(try parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n").map(\.1) == [0])
        let interim = try parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        #expect(interim.count == 1 && interim[0].0.status == 201 && interim[0].1 == 2)
    }

    @Test("keep-alive: HTTP/1.1 keeps by default, Connection: close ends it, HTTP/1.0 needs keep-alive")
    func keepAlive() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")[0].0.keepAlive == false)
        #expect(try parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")[0].0.keepAlive == false)
        #expect(try parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")[0].0.keepAlive == true)
    }

    @Test("without a length the body runs until the connection closes")
    func untilClose() throws {
        let results = try parse("HTTP/1.1 200 OK\r\n\r\nall of this is body", piece: 4)
        #expect(results.count == 1 && results[0].1 == 19 && results[0].0.keepAlive == false)
    }

    @Test(
        "malformed responses are refused",
        arguments: [
            "SMTP/1.0 220 hello\r\n\r\n",
            "X\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        ]
    )
    func malformed(response: String) {
        #expect(throws: HTTPResponseParser.Malformed.self) { try parse(response) }
    }

    @Test("only CRLF ends a head line: a bare LF stays inside its line", arguments: pieces)
    func bareLineFeed(piece: Int) throws {
        let results = try parse("HTTP/1.1 200 OK\r\nX-A: a\nb\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n", piece: piece)
        #expect(results.map(\.0.status) == [200, 204])
        #expect(results.map(\.1) == [2, 0])
    }

    @Test("a head larger than 64 KiB is refused rather than buffered without end")
    func headLimit() {
        let huge = "HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: 70_000)
        #expect(throws: HTTPResponseParser.Malformed.self) { try parse(huge) }
    }

    /// A load of one client, one request a second, to 127.0.0.1:8080 and `path`.
    private static func oneClient(path: String) -> LoadConfiguration {
        LoadConfiguration(target: .init(host: "127.0.0.1", port: 8080, path: path), clients: 1, pacing: .openLoop(ratePerClient: 1, arrival: .constant))
    }

    /// The bytes of request 42 from 203.0.113.7 with key 3: a POST to `path` with header `X-Test: yes`
    /// and the body "hi", written over what `bytes` held.
    private static func post(path: String, into bytes: inout ByteBuffer) {
        var configuration = Self.oneClient(path: path)
        configuration.method = "POST"
        configuration.headers = [("X-Test", "yes")]
        configuration.body = Array("hi".utf8)
        RequestTemplate(configuration: configuration).write(id: 42, clientIP: "203.0.113.7", key: 3, into: &bytes)
    }

    @Test("request bytes: the template's prefix, then id, client address and key")
    func requestTemplate() {
        var bytes = ByteBuffer(string: "what the buffer held before")
        Self.post(path: "/a?b=1", into: &bytes)
        #expect(
            String(buffer: bytes)
                == "POST /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Test: yes\r\n"
                + "Content-Length: 2\r\nX-Request-Id: 42\r\nX-Forwarded-For: 203.0.113.7\r\nX-LBLab-Key: 3\r\n\r\nhi"
        )
    }

    @Test("every header the template writes but Host is one a -header cannot give; it writes no User-Agent of its own")
    func reservedHeaders() {
        var bytes = ByteBuffer()
        Self.post(path: "/", into: &bytes)
        let lines = String(buffer: bytes).components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n").dropFirst()
        let names = lines.map { String($0.prefix { $0 != ":" }).lowercased() }
        #expect(names.count == 6 && !names.contains("user-agent"), "\(names)")
        for name in names where !["host", "x-test"].contains(name) {
            #expect(LoadConfiguration.headerLoadgenWrites(name, keys: true) != nil, "loadgen writes \(name), and -header may give it too")
        }
        #expect(LoadConfiguration.headerLoadgenWrites("x-test", keys: true) == nil)
        #expect(LoadConfiguration.headerLoadgenWrites("x-lblab-key", keys: false) == nil, "without -keys the header is the user's")
    }

    @Test("a Host header given replaces loadgen's own instead of making a second; a User-Agent given goes as it is")
    func givenHost() {
        var configuration = Self.oneClient(path: "/")
        configuration.headers = [("host", "api.lblab.test"), ("User-Agent", "probe/1")]
        var bytes = ByteBuffer()
        RequestTemplate(configuration: configuration).write(id: 1, clientIP: "203.0.113.1", key: nil, into: &bytes)
        #expect(
            String(buffer: bytes)
                == "GET / HTTP/1.1\r\nhost: api.lblab.test\r\nUser-Agent: probe/1\r\nX-Request-Id: 1\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n"
        )
    }

    @Test("numbers go into a request as String(describing:) writes them, at their extremes too")
    func decimals() {
        for value: Int64 in [0, 7, 10, 99, 100, 1_234_567_890, -1, -10, .max, .min, .max - 1, .min + 1] {
            var bytes = ByteBuffer(string: "x")
            RequestTemplate.writeDecimal(value, into: &bytes)
            #expect(String(buffer: bytes) == "x\(value)")
        }
    }
}
