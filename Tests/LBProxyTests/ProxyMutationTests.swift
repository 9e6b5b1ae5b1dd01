import Foundation
import LBConfig
import LBCore
import LBHTTP
import LBTesting
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import LBProxy

#if canImport(Glibc)
import Glibc
#endif

/// A running proxy sent requests, or answered by a backend with responses, mutated at random (fixed
/// seeds), two hundred connections at a time: it answers each client with HTTP or closes its connection,
/// gives back every backend place the requests took, and serves a plain request afterwards.
@Suite("Proxy under mutated requests", .serialized)
struct ProxyMutationTests {
    static let requests = [
        "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello",
        "POST /p HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        "GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        "GET /chat HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET http://a.test/x HTTP/1.1\r\nHost: b.test\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
        "GET /x HTTP/1.0\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "PUT /e HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    ]

    @Test("a thousand mutated requests")
    func mutated() async throws {
        try await withBackends(["b1", "b2"], { _ in }) { specs in
            var service = Service(name: "s", algorithm: .leastConnections, backends: specs)
            service.timeouts.clientIdle = .milliseconds(200)
            service.timeouts.request = .seconds(2)
            let server = try ProxyServer(configuration: .onLoopback([service], threads: 2))
            let port = try await server.start()[0].port!
            var generator = SeededGenerator(seed: 0x9A0C_0000)
            var answered = 0
            var statuses: [Int: Int] = [:]
            for batch in 0..<5 {
                var connections: [(fd: Int32, sent: [UInt8])] = []
                for index in 0..<200 {
                    let request = Self.requests[(batch * 200 + index) % Self.requests.count]
                    let bytes = Mutation.mutated(Array(request.utf8), using: &generator)
                    let fd = try connectLoopback(port)
                    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    connections.append((fd, bytes))
                }
                // Long enough for an answer, and four times the client-idle timeout that ends a head cut short.
                try await Task.sleep(for: .milliseconds(800))
                for (fd, sent) in connections {
                    let received = Self.takeAndClose(fd)
                    guard !received.isEmpty else { continue }
                    answered += 1
                    var response = ByteBuffer(bytes: received)
                    var fields: [HTTPHeaderField] = []
                    do {
                        if let head = try HTTPHead.readResponse(from: &response, requestIsHEAD: false, fields: &fields) {
                            statuses[head.status, default: 0] += 1
                        }
                    } catch {
                        Issue.record("\(String(reflecting: String(decoding: sent, as: UTF8.self))) got \(String(reflecting: String(decoding: received.prefix(200), as: UTF8.self)))")
                    }
                }
            }
            #expect(try await eventually { server.requestsInFlight == 0 }, "every backend place given back")
            let plain = try rawRequest(port, Array("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n".utf8))
            #expect(plain.head.hasPrefix("HTTP/1.1 200 "))
            #expect(answered > 900 && (statuses[200] ?? 0) > 100 && (statuses[400] ?? 0) > 100, "\(answered) answered: \(statuses)")
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        }
    }

    static let responses = [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: t\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nX-LBLab-Backend: spoof\r\n\r\nbusy",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    ]

    @Test("a thousand mutated responses")
    func mutatedResponses() async throws {
        var generator = SeededGenerator(seed: 0xBAD0_0000)
        let mutants = (0..<1_000).map { Mutation.mutated(Array(Self.responses[$0 % Self.responses.count].utf8), using: &generator) }
        let next = Mutex(0)
        let backend = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        MutantResponder { next.withLock { index in defer { index += 1 }; return mutants[index % mutants.count] } }
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        var service = Service(name: "s", backends: [BackendSpec(name: "m", address: HostPort(host: "127.0.0.1", port: backend.localAddress!.port!))])
        service.retries.maxRetries = 0
        service.timeouts.responseHeader = .milliseconds(300)
        service.timeouts.request = .seconds(1)
        service.outlierDetection = nil
        let server = try ProxyServer(configuration: .onLoopback([service], threads: 2))
        let port = try await server.start()[0].port!
        var statuses: [Int: Int] = [:]
        for _ in 0..<5 {
            let fds = try (0..<200).map { _ in
                let fd = try connectLoopback(port)
                _ = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n".utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
                return fd
            }
            // Three times the response-header timeout that ends a response whose head never completes.
            try await Task.sleep(for: .milliseconds(900))
            for fd in fds {
                let received = Self.takeAndClose(fd)
                var response = ByteBuffer(bytes: received)
                var fields: [HTTPHeaderField] = []
                do {
                    // Interim responses first, as the client would read them.
                    while let head = try HTTPHead.readResponse(from: &response, requestIsHEAD: false, fields: &fields) {
                        guard head.status < 200 else {
                            statuses[head.status, default: 0] += 1
                            // The backend's answers name it (once, its own spoof gone); the proxy's own say
                            // what happened in a line that begins with their status.
                            let own = String(buffer: response).hasPrefix("\(head.status) ")
                            let named = fields.filter { $0.kind == .xLBLabBackend }.count
                            #expect(named == (own ? 0 : 1), "\(String(reflecting: String(decoding: received, as: UTF8.self)))")
                            break
                        }
                    }
                } catch {
                    Issue.record("the client got \(String(reflecting: String(decoding: received.prefix(300), as: UTF8.self))): \(error.reason)")
                }
            }
        }
        #expect(try await eventually { server.requestsInFlight == 0 }, "every backend place given back")
        #expect((statuses[200] ?? 0) > 100 && (statuses[502] ?? 0) > 100, "\(statuses)")
        #expect(await server.shutdown(grace: .seconds(5)) == 0)
        try await backend.close()
    }

    /// What `fd` has received so far, without waiting; then closes it.
    static func takeAndClose(_ fd: Int32) -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        close(fd)
        return received
    }
}

/// Answers each request head with the next mutant response, and keeps the connection open.
private final class MutantResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let next: @Sendable () -> [UInt8]
    private var received: [UInt8] = []

    init(next: @escaping @Sendable () -> [UInt8]) {
        self.next = next
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received += self.unwrapInboundIn(data).readableBytesView
        while let end = (0..<max(0, self.received.count - 3)).first(where: { self.received[$0..<$0 + 4] == [13, 10, 13, 10] }) {
            self.received.removeFirst(end + 4)
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: self.next())), promise: nil)
        }
    }
}
