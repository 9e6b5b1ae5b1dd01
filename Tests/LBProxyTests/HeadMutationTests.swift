import LBCore
import LBHTTP
import LBTesting
import NIOCore
import Testing

@testable import LBProxy

/// The strict head reader and the rewriter under heads mutated at random (fixed seeds): reading never
/// traps, and whatever is read is written out as a head that reads back the same, so the proxy never
/// sends a backend a head it would not accept itself, nor one that frames the body differently (the
/// root of request smuggling).
@Suite("Heads under random mutation")
struct HeadMutationTests {
    static let requests = [
        "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "POST /api/x?y=1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nX-Request-Id: r1\r\nAccept: */*\r\n\r\n",
        "PUT /p HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\r\n",
        "GET http://user@api.test:8080/x HTTP/1.1\r\nHost: other.test\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n\r\n",
        "GET /chat HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a.test\r\nTE: trailers\r\nKeep-Alive: 5\r\n\r\n",
        "GET /old HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
    ]
    static let responses = [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: t\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\nConnection: close\r\n\r\n",
        "HTTP/1.0 404 Not Found\r\nKeep-Alive: timeout=5\r\nX-LBLab-Backend: spoof\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    ]
    static func mutated(_ text: String, using generator: inout SeededGenerator) -> [UInt8] {
        Mutation.mutated(Array(text.utf8), using: &generator)
    }

    @Test("a mutated request is read or refused, never trapped on; what is read goes to a backend as a head that reads back alike", arguments: 0..<4)
    func requests(seed: UInt64) throws {
        var generator = SeededGenerator(seed: 0x5EED_0000 + seed)
        let rewriter = ForwardedHeaders(trustedProxies: AddressRange.loopback)
        var read = 0
        var refused = 0
        for round in 0..<5_000 {
            let bytes = Self.mutated(Self.requests[round % Self.requests.count], using: &generator)
            var buffer = ByteBuffer(bytes: bytes)
            var fields: [HTTPHeaderField] = []
            let head: HTTPHead?
            do {
                head = try HTTPHead.readRequest(from: &buffer, fields: &fields)
            } catch {
                refused += 1
                continue
            }
            guard let head else { continue }
            read += 1
            for peer in ["192.0.2.1", "127.0.0.1"] {
                var out = rewriter.forwarded(head, fields: fields, peer: peer, requestID: 7)
                let written = String(buffer: out)
                var again: [HTTPHeaderField] = []
                let reread: HTTPHead?
                do {
                    reread = try HTTPHead.readRequest(from: &out, fields: &again)
                } catch {
                    Issue.record("\(String(reflecting: String(decoding: bytes, as: UTF8.self))) went out as \(String(reflecting: written)), which reads as malformed: \(error.reason)")
                    continue
                }
                let back = try #require(reread, "\(String(reflecting: written)) is not a whole head")
                #expect(out.readableBytes == 0, "\(String(reflecting: written))")
                #expect(back.framing == head.framing, "\(String(reflecting: written))")
                #expect(back.string(back.method) == head.string(head.method) && back.string(back.target) == head.string(head.target))
                #expect(back.keepAlive && back.minorVersion == 1, "\(String(reflecting: written))")
                #expect((back.upgrade == nil) == (head.upgrade == nil), "\(String(reflecting: written))")
                let host = head.authority.flatMap { $0.isEmpty ? nil : head.string($0) } ?? head.host.map(head.string) ?? "127.0.0.1:8080"
                #expect(back.host.map(back.string) == host, "\(String(reflecting: written))")
                #expect(again.filter { $0.kind == .xForwardedFor }.count == 1, "one X-Forwarded-For: \(String(reflecting: written))")
            }
        }
        // The mutations reach both sides of the reader, not only one.
        #expect(read > 500 && refused > 500, "read \(read), refused \(refused)")
    }

    @Test("a mutated response is read or refused, never trapped on; what is read goes to the client as a head that reads back alike", arguments: 0..<4)
    func responses(seed: UInt64) throws {
        var generator = SeededGenerator(seed: 0xBACC_0000 + seed)
        var read = 0
        var refused = 0
        for round in 0..<5_000 {
            let bytes = Self.mutated(Self.responses[round % Self.responses.count], using: &generator)
            var buffer = ByteBuffer(bytes: bytes)
            var fields: [HTTPHeaderField] = []
            let head: HTTPHead?
            do {
                head = try HTTPHead.readResponse(from: &buffer, requestIsHEAD: false, fields: &fields)
            } catch {
                refused += 1
                continue
            }
            guard let head else { continue }
            read += 1
            let connection: ForwardedHeaders.ConnectionHeader = head.status == 101 && head.upgrade != nil ? .upgrade : head.keepAlive ? .none : .close
            var out = ByteBuffer()
            ForwardedHeaders.writeResponseHead(head, fields: fields, backend: "b1", connection: connection, into: &out)
            let written = String(buffer: out)
            var again: [HTTPHeaderField] = []
            let reread: HTTPHead?
            do {
                reread = try HTTPHead.readResponse(from: &out, requestIsHEAD: false, fields: &again)
            } catch {
                Issue.record("\(String(reflecting: String(decoding: bytes, as: UTF8.self))) went out as \(String(reflecting: written)), which reads as malformed: \(error.reason)")
                continue
            }
            let back = try #require(reread, "\(String(reflecting: written)) is not a whole head")
            #expect(back.status == head.status && back.framing == head.framing, "\(String(reflecting: written))")
            #expect(back.keepAlive == (connection != .close), "\(String(reflecting: written))")
            #expect(again.filter { $0.kind == .xLBLabBackend }.count == 1, "\(String(reflecting: written))")
        }
        #expect(read > 500 && refused > 500, "read \(read), refused \(refused)")
    }

    /// What a framer made of `bytes` fed in `pieces`: the bytes it claimed and whether the body ended,
    /// or why it refused them.
    static func frame(_ bytes: [UInt8], in pieces: [Range<Int>]) -> (claimed: Int, complete: Bool, refused: String?) {
        var framer = HTTPBodyFramer(.chunked)
        var claimed = 0
        for piece in pieces where !framer.isComplete {
            do {
                claimed += try bytes[piece].withUnsafeBytes { try framer.scan($0) }
            } catch {
                // What earlier pieces took no longer counts: the connection closes.
                return (0, false, (error as? HTTPMalformed)?.reason ?? "\(error)")
            }
        }
        return (claimed, framer.isComplete, nil)
    }

    @Test("a mutated chunked body ends at the same byte, or is refused for the same reason, whole and in random pieces", arguments: 0..<4)
    func chunkedBodies(seed: UInt64) {
        let bodies = [
            "5;name=x\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 15\r\n\r\n",
            "1\r\na\r\n0\r\n\r\n",
            "10\r\n0123456789abcdef\r\n0;last\r\n\r\n",
        ]
        var generator = SeededGenerator(seed: 0xC0DE_0000 + seed)
        var complete = 0
        var refused = 0
        for round in 0..<3_000 {
            let bytes = Mutation.mutated(Array(bodies[round % bodies.count].utf8), using: &generator) + Array("GET / HTTP/1.1\r\n".utf8)
            let whole = Self.frame(bytes, in: [0..<bytes.count])
            for _ in 0..<3 {
                let pieces = Mutation.pieces(bytes.count, using: &generator)
                let split = Self.frame(bytes, in: pieces)
                #expect(
                    split.claimed == whole.claimed && split.complete == whole.complete && split.refused == whole.refused,
                    "\(String(reflecting: String(decoding: bytes, as: UTF8.self))) in pieces \(pieces.map(\.count))"
                )
            }
            if whole.complete { complete += 1 }
            if whole.refused != nil { refused += 1 }
        }
        #expect(complete > 200 && refused > 500, "complete \(complete), refused \(refused)")
    }
}
