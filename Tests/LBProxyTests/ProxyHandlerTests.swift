import LBConfig
import LBCore
import NIOCore
import NIOEmbedded
import Testing

@testable import LBProxy

/// The proxy's connection handler on an `EmbeddedChannel`: what it answers by itself, byte for byte.
@Suite("Proxy handler on an embedded channel")
struct ProxyHandlerTests {
    /// A channel with the handler over a runtime of `services`, its peer at 192.0.2.9.
    private func channel(_ services: [Service]) throws -> EmbeddedChannel {
        let configuration = ProxyConfiguration.onLoopback(services, threads: 1)
        let runtime = ProxyRuntime(configuration: configuration)
        let channel = EmbeddedChannel()
        let loop = try LoopContext(eventLoop: channel.embeddedEventLoop, runtime: runtime, index: 0)
        try channel.pipeline.syncOperations.addHandler(ProxyHTTPHandler(loop: loop))
        try channel.connect(to: SocketAddress(ipAddress: "192.0.2.9", port: 40_000)).wait()
        return channel
    }

    /// A service without backends for requests to `api.test`.
    private func apiService() -> Service {
        var routed = Service(name: "api", backends: [])
        routed.route = Service.Route(hosts: ["api.test"])
        return routed
    }

    private func answer(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return text
    }

    @Test("a malformed request gets a 400 naming the problem, and the connection closes")
    func malformed() throws {
        let channel = try self.channel([Service(name: "s", backends: [])])
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
        let text = try self.answer(channel)
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(text)")
        #expect(text.contains("Connection: close\r\n") && text.hasSuffix("400 Bad Request: both Content-Length and Transfer-Encoding\n"), "\(text)")
        #expect(!channel.isActive)
    }

    @Test("a head over 64 KiB gets a 431; CONNECT gets a 501; both close the connection")
    func refusedByKind() throws {
        let large = try self.channel([Service(name: "s", backends: [])])
        try large.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "b", count: 70_000))"))
        let tooLarge = try self.answer(large)
        #expect(tooLarge.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n") && tooLarge.hasSuffix(": request head over 64 KiB\n"), "\(tooLarge)")
        #expect(!large.isActive)
        let tunnel = try self.channel([Service(name: "s", backends: [])])
        try tunnel.writeInbound(ByteBuffer(string: "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"))
        let refused = try self.answer(tunnel)
        #expect(refused.hasPrefix("HTTP/1.1 501 Not Implemented\r\n") && refused.contains("Connection: close\r\n"), "\(refused)")
        #expect(!tunnel.isActive)
    }

    @Test("a request no service takes gets a 404; a service without backends answers 503 and keeps the connection")
    func ownAnswers() throws {
        let channel = try self.channel([self.apiService()])
        try channel.writeInbound(ByteBuffer(string: "GET /x HTTP/1.1\r\nHost: api.test\r\n\r\n"))
        let unavailable = try self.answer(channel)
        #expect(unavailable.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n") && !unavailable.contains("Connection: close"), "\(unavailable)")
        #expect(unavailable.hasSuffix("503 Service Unavailable: no backend of service api is available\n"))
        #expect(channel.isActive)
        try channel.writeInbound(ByteBuffer(string: "HEAD /y HTTP/1.1\r\nHost: other.test\r\n\r\n"))
        let missing = try self.answer(channel)
        #expect(missing.hasPrefix("HTTP/1.1 404 Not Found\r\n") && missing.hasSuffix("\r\n\r\n"), "HEAD: no body: \(missing)")
        #expect(!channel.isActive)
    }

    @Test("a request whose target is in absolute form goes to the service of its authority, whatever its Host says")
    func absoluteFormRouted() throws {
        let channel = try self.channel([self.apiService()])
        try channel.writeInbound(ByteBuffer(string: "GET http://API.test:8080/x HTTP/1.1\r\nHost: other.test\r\n\r\n"))
        let answer = try self.answer(channel)
        #expect(answer.hasSuffix("503 Service Unavailable: no backend of service api is available\n"), "\(answer)")
        try channel.writeInbound(ByteBuffer(string: "GET http://other.test/x HTTP/1.1\r\nHost: api.test\r\n\r\n"))
        let missing = try self.answer(channel)
        #expect(missing.hasPrefix("HTTP/1.1 404 Not Found\r\n") && missing.hasSuffix("no service for http://other.test/x\n"), "\(missing)")
    }

    @Test("after a request that asks to close, a pipelined one behind it is not served")
    func closeEndsPipeline() throws {
        let channel = try self.channel([Service(name: "s", backends: [])])
        try channel.writeInbound(ByteBuffer(string: "GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"))
        let text = try self.answer(channel)
        #expect(text.components(separatedBy: "HTTP/1.1 503").count == 2 && text.contains("Connection: close\r\n"), "\(text)")
        #expect(!channel.isActive)
    }

    @Test("a head that arrives in pieces is read once whole")
    func pieces() throws {
        let channel = try self.channel([Service(name: "s", backends: [])])
        for piece in ["GET / HT", "TP/1.1\r\nHo", "st: a\r\n", "\r\n"] {
            #expect(try self.answer(channel).isEmpty)
            try channel.writeInbound(ByteBuffer(string: piece))
        }
        #expect(try self.answer(channel).hasPrefix("HTTP/1.1 503 "))
    }

    @Test("the client-idle timeout closes a connection that sends nothing")
    func idle() throws {
        var service = Service(name: "s", backends: [])
        service.timeouts.clientIdle = .seconds(5)
        let channel = try self.channel([service])
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(4_900))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
        #expect(try self.answer(channel).isEmpty, "nothing asked, nothing answered")
    }

    @Test("a head that stops halfway gets a 408 at the client-idle timeout, however slowly its bytes came")
    func partialHead() throws {
        var service = Service(name: "s", backends: [])
        service.timeouts.clientIdle = .seconds(5)
        let channel = try self.channel([service])
        for piece in ["GET / HTTP/1.1\r\n", "Host: a\r\n", "X-Slow: 1\r\n", "X-Slow: 2\r\n"] {
            try channel.writeInbound(ByteBuffer(string: piece))
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(1_200))
        }
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(400))
        let answer = try self.answer(channel)
        #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n") && answer.contains("Connection: close\r\n"), "\(answer)")
        #expect(answer.hasSuffix("within the client-idle timeout (5s)\n"), "\(answer)")
        #expect(!channel.isActive)
    }
}
