import Foundation
import LBConfig
import LBCore
import LBTesting
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization
import Testing

@testable import LBProxy

#if canImport(Glibc)
import Glibc
#endif

/// WebSockets through the proxy: a request asking for a protocol switch goes to the backend with its
/// `Upgrade`, and after the backend's 101 the two connections are a tunnel.
@Suite("Protocol switches (WebSocket) through the proxy", .serialized)
struct ProxyTunnelTests {
    /// The handshake of RFC 6455 §1.3, whose key the backend must get unchanged to answer with this
    /// accept value.
    static let handshake = "GET /chat HTTP/1.1\r\nHost: chat.test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    static let accept = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    /// Runs `body` with a proxy over a WebSocket echo backend for each of `names`, serving `algorithm`
    /// with `configure`'s settings.
    func withProxy(
        backends names: [String] = ["b1"],
        algorithm: Algorithm = .roundRobin,
        recorder: ProxyRecorder? = nil,
        configure: (inout Service) -> Void = { _ in },
        _ body: (ProxyServer, Int, [WebSocketEchoBackend]) async throws -> Void
    ) async throws {
        var backends: [WebSocketEchoBackend] = []
        for _ in names { backends.append(try await WebSocketEchoBackend.start()) }
        var service = Service(
            name: "ws",
            algorithm: algorithm,
            backends: zip(names, backends).map { BackendSpec(name: $0, address: HostPort(host: "127.0.0.1", port: $1.port)) }
        )
        configure(&service)
        let server = try ProxyServer(configuration: .onLoopback([service], threads: 2), recorder: recorder)
        do {
            let port = try await server.start()[0].port!
            try await body(server, port, backends)
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        } catch {
            await server.shutdown(grace: .zero)
            for backend in backends { await backend.stop() }
            throw error
        }
        for backend in backends { await backend.stop() }
    }

    @Test("a WebSocket's handshake reaches the backend whole, and frames pass both ways, one of 1 MiB included")
    func echo() async throws {
        try await withProxy { server, port, backends in
            let client = try RawConnection(port: port)
            // A text frame right behind the handshake, before the 101 (clients may do so): it waits for
            // the switch and then goes through.
            try client.send(Array(Self.handshake.utf8) + WebSocketWire.maskedFrame(opcode: 0x1, Array("early".utf8)))
            let head = try client.readHead()
            #expect(head.hasPrefix("HTTP/1.1 101 "), "\(head)")
            let lines = Set(head.split(separator: "\r\n").map(String.init))
            #expect(lines.contains(Self.accept), "the key reached the backend unchanged: \(head)")
            #expect(lines.contains("Upgrade: websocket") && lines.contains("Connection: upgrade") && lines.contains("X-LBLab-Backend: b1"), "\(head)")
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x1, payload: Array("early".utf8)))

            try client.send(WebSocketWire.maskedFrame(opcode: 0x1, Array("hello".utf8)))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x1, payload: Array("hello".utf8)))
            var generator = SeededGenerator(seed: 7)
            let large = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            try client.send(WebSocketWire.maskedFrame(opcode: 0x2, large))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x2, payload: large))

            #expect(server.requestsInFlight == 1, "the tunnel holds its place with the backend")
            client.close()
            #expect(try await eventually { backends[0].closed.value == 1 }, "the client's close reaches the backend")
            #expect(try await eventually { server.requestsInFlight == 0 })
        }
    }

    @Test("a handshake after a plain request goes on a new upstream connection, which the backend switches")
    func upgradeAfterKeepAlive() async throws {
        try await withProxy { server, port, backends in
            let client = try RawConnection(port: port)
            // The plain request leaves its upstream connection idle in this loop's pool. SwiftNIO's
            // server switches only on a connection's first request: on that one, the handshake would be
            // answered as a plain request.
            try client.send(Array("GET /plain HTTP/1.1\r\nHost: chat.test\r\n\r\n".utf8))
            #expect(try client.readHead().hasPrefix("HTTP/1.1 200 "))
            _ = try client.read(count: 5)
            try client.send(Array(Self.handshake.utf8))
            let head = try client.readHead()
            #expect(head.hasPrefix("HTTP/1.1 101 "), "\(head)")
            try client.send(WebSocketWire.maskedFrame(opcode: 0x1, Array("hello".utf8)))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x1, payload: Array("hello".utf8)))
            client.close()
            #expect(try await eventually { backends[0].closed.value == 1 && server.requestsInFlight == 0 })
        }
    }

    @Test("the backend closing the WebSocket closes the client's connection, and the row records a 101 for the tunnel's life")
    func backendCloses() async throws {
        let sink = InMemoryRecordSink()
        try await withProxy(recorder: try ProxyRecorder(sink: sink, accessLogPath: nil)) { server, port, _ in
            let client = try RawConnection(port: port)
            try client.send(Array(Self.handshake.utf8))
            #expect(try client.readHead().hasPrefix("HTTP/1.1 101 "))
            try await Task.sleep(for: .milliseconds(200))
            try client.send(WebSocketWire.maskedFrame(opcode: 0x8, [0x03, 0xE8]))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x8, payload: [0x03, 0xE8]))
            #expect(try client.readsEnd(), "the backend's close reaches the client")
            client.close()
            #expect(try await eventually { server.requestsInFlight == 0 })
        }
        let row = try #require(sink.snapshot.proxyRequests.first)
        #expect(sink.snapshot.proxyRequests.count == 1 && row.status == 101 && row.attempts == 1)
        let start = try #require(row.upstreamStartMicros)
        let done = try #require(row.upstreamDoneMicros)
        #expect(done - start >= 200_000, "the row spans the tunnel, not only its handshake")
    }

    @Test("a backend that does not switch answers as to any request, and the client's connection stays HTTP")
    func declined() async throws {
        // LBLab's synthetic backend knows no WebSocket: it answers the request as it would without Upgrade.
        try await withBackends(["b1"], { _ in }) { specs in
            let server = try ProxyServer(configuration: .onLoopback([Service(name: "s", algorithm: .roundRobin, backends: specs)], threads: 1))
            let port = try await server.start()[0].port!
            let fd = try connectLoopback(port)
            defer { Glibc.close(fd) }
            for _ in 0..<3 {
                let answer = try rawRequest(on: fd, Array(Self.handshake.utf8))
                #expect(answer.head.hasPrefix("HTTP/1.1 200 ") && answer.head.contains("X-LBLab-Backend: b1"), "\(answer.head)")
                #expect(!answer.head.lowercased().contains("upgrade"), "\(answer.head)")
            }
            #expect(server.requestsInFlight == 0)
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        }
    }

    @Test("a WebSocket is a request in flight while it lasts: least connections sends the next one to the other backend")
    func leastConnections() async throws {
        try await withProxy(backends: ["b1", "b2"], algorithm: .leastConnections) { server, port, _ in
            var served: [String] = []
            var clients: [RawConnection] = []
            for _ in 0..<2 {
                let client = try RawConnection(port: port)
                try client.send(Array(Self.handshake.utf8))
                let head = try client.readHead()
                served += head.split(separator: "\r\n").filter { $0.hasPrefix("X-LBLab-Backend: ") }.map { String($0.dropFirst(17)) }
                clients.append(client)
            }
            #expect(served.sorted() == ["b1", "b2"], "\(served)")
            #expect(server.requestsInFlight == 2)
            for client in clients { client.close() }
            #expect(try await eventually { server.requestsInFlight == 0 })
        }
    }

    @Test("a WebSocket outlives its backend's removal through the admin API, as a request in flight does")
    func backendRemoved() async throws {
        try await withProxy(backends: ["b1", "b2"]) { server, port, backends in
            let client = try RawConnection(port: port)
            try client.send(Array(Self.handshake.utf8))
            let head = try client.readHead()
            let name = try #require(head.split(separator: "\r\n").first { $0.hasPrefix("X-LBLab-Backend: ") }.map { String($0.dropFirst(17)) })
            let api = AdminAPI(runtime: server.runtime, token: nil) { _ in true }
            #expect(await api.handle(AdminAPI.Request(method: "DELETE", target: "/backends/\(name)")).status == 200)
            try client.send(WebSocketWire.maskedFrame(opcode: 0x1, Array("still here".utf8)))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x1, payload: Array("still here".utf8)))
            client.close()
            let index = name == "b1" ? 0 : 1
            #expect(try await eventually { backends[index].closed.value == 1 }, "the client's close reaches the removed backend")
            // A new WebSocket goes to the backend that is left.
            let next = try RawConnection(port: port)
            try next.send(Array(Self.handshake.utf8))
            #expect(try next.readHead().contains("X-LBLab-Backend: \(name == "b1" ? "b2" : "b1")"))
        }
    }

    @Test("a WebSocket silent both ways for the tunnel timeout is closed; one in use is not, however long it lasts")
    func idleTimeout() async throws {
        try await withProxy(configure: { $0.timeouts.tunnel = .milliseconds(600) }) { server, port, backends in
            let client = try RawConnection(port: port)
            try client.send(Array(Self.handshake.utf8))
            #expect(try client.readHead().hasPrefix("HTTP/1.1 101 "))
            // Twice the timeout, never silent for a sixth of it.
            for index in 0..<12 {
                try client.send(WebSocketWire.maskedFrame(opcode: 0x1, Array("tick \(index)".utf8)))
                #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x1, payload: Array("tick \(index)".utf8)))
                try await Task.sleep(for: .milliseconds(100))
            }
            let silent = ContinuousClock.now
            #expect(try client.readsEnd(), "closed once silent")
            let waited = ContinuousClock.now - silent
            #expect(waited >= .milliseconds(400) && waited < .seconds(5), "\(waited)")
            client.close()
            #expect(try await eventually { backends[0].closed.value == 1 }, "the backend's side closed too")
            #expect(try await eventually { server.requestsInFlight == 0 })
        }
    }
}

/// A WebSocket echo server on loopback, made with SwiftNIO's server upgrader (which checks the
/// handshake and computes the accept value): it switches `GET /chat`, echoes every data frame, answers
/// a close with a close and closes; any other request gets a 200 `plain`.
final class WebSocketEchoBackend: Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: any Channel
    /// WebSockets that ended, on either side's close.
    let closed: Tally

    var port: Int { self.channel.localAddress!.port! }

    private init(group: MultiThreadedEventLoopGroup, channel: any Channel, closed: Tally) {
        self.group = group
        self.channel = channel
        self.closed = closed
    }

    static func start() async throws -> WebSocketEchoBackend {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let ended = Tally()
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: 1 << 21,
            shouldUpgrade: { channel, head in channel.eventLoop.makeSucceededFuture(head.uri == "/chat" ? HTTPHeaders() : nil) },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(EchoFrames(onClose: { ended.add() }))
                }
            }
        )
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrade: NIOHTTPServerUpgradeConfiguration = (
                        upgraders: [upgrader],
                        completionHandler: { context in context.pipeline.removeHandler(name: "plain", promise: nil) }
                    )
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withServerUpgrade: upgrade)
                    try channel.pipeline.syncOperations.addHandler(PlainAnswer(), name: "plain")
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return WebSocketEchoBackend(group: group, channel: channel, closed: ended)
    }

    func stop() async {
        try? await self.channel.close()
        try? await self.group.shutdownGracefully()
    }

    /// A count any thread adds to.
    final class Tally: Sendable {
        private let count = Atomic<Int>(0)
        var value: Int { self.count.load(ordering: .relaxed) }
        func add() { self.count.add(1, ordering: .relaxed) }
    }
}

/// Echoes data frames; answers a close with a close, then closes.
private final class EchoFrames: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let onClose: @Sendable () -> Void

    init(onClose: @escaping @Sendable () -> Void) {
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            context.writeAndFlush(self.wrapOutboundOut(WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            let reply = WebSocketFrame(fin: true, opcode: .connectionClose, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(reply)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.onClose()
        context.fireChannelInactive()
    }
}

/// What a request that is not switched gets: 200 `plain`, kept alive.
private final class PlainAnswer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = self.unwrapInboundIn(data) else { return }
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "5"])
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "plain")))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}

