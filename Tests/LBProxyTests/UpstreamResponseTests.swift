import Foundation
import LBConfig
import LBCore
import LBTesting
import NIOCore
import NIOPosix
import Testing

@testable import LBProxy

#if canImport(Glibc)
import Glibc
#endif

/// The proxy in front of a backend that answers every request with the same bytes, as a faulty or
/// unusual server would: what reaches the client.
@Suite("Backend responses read by the proxy", .serialized)
struct UpstreamResponseTests {
    /// Runs `body` with a proxy whose one backend answers each request head with `response` and keeps
    /// the connection open (so that the proxy cannot learn of a problem from a close); with
    /// `answersPerConnection`, it closes a connection instead of answering once it has answered that
    /// many requests on it.
    private func withCannedBackend(
        _ response: String,
        answersPerConnection: Int = .max,
        accessLog: String? = nil,
        _ body: (Int) async throws -> Void
    ) async throws {
        let backend = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CannedResponder(response: response, answers: answersPerConnection))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let spec = BackendSpec(name: "canned", address: HostPort(host: "127.0.0.1", port: backend.localAddress!.port!))
        var service = Service(name: "s", backends: [spec])
        service.retries.maxRetries = 0
        service.timeouts.responseHeader = .seconds(20)
        let recorder = try accessLog.map { try ProxyRecorder(sink: InMemoryRecordSink(), accessLogPath: $0) }
        let server = try ProxyServer(configuration: ProxyConfiguration.onLoopback([service], threads: 1), recorder: recorder)
        let address = try await server.start()[0]
        do {
            try await body(address.port!)
        } catch {
            await server.shutdown(grace: .zero)
            try await backend.close()
            throw error
        }
        await server.shutdown(grace: .seconds(5))
        try await backend.close()
    }

    @Test(
        "a malformed response gets a 502 that says what was wrong with it, at once",
        arguments: [
            ("HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "bare LF in the response head (lines end with CRLF)"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", "Content-Length headers that disagree"),
            ("HELLO\r\n\r\n", "not an HTTP/1.x status line"),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", "a protocol switch that was not asked for"),
        ]
    )
    func malformed(response: String, reason: String) async throws {
        try await withCannedBackend(response) { port in
            let clock = ContinuousClock()
            let start = clock.now
            let answer = try rawExchange(port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(answer)")
            #expect(answer.hasSuffix("502 Bad Gateway: canned sent a malformed response: \(reason)\n"), "\(answer)")
            // Well within the 20 s response-header timeout: the proxy did not wait for more.
            #expect(clock.now - start < .seconds(5))
        }
    }

    @Test("a 101 to a request that asked for a switch, but without Upgrade, gets a 502 that says so")
    func switchWithoutUpgrade() async throws {
        try await withCannedBackend("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n") { port in
            let answer = try rawExchange(port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(answer)")
            #expect(answer.hasSuffix("502 Bad Gateway: canned sent a malformed response: a 101 without Upgrade and Connection: upgrade\n"), "\(answer)")
        }
    }

    @Test("a repeated, equal Content-Length reaches the client once")
    func repeatedLength() async throws {
        try await withCannedBackend("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok") { port in
            let answer = try rawExchange(port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.hasSuffix("\r\n\r\nok"), "\(answer)")
            #expect(answer.components(separatedBy: "Content-Length: 2\r\n").count == 2, "\(answer)")
        }
    }

    @Test("a kept-alive connection the backend closes on a request goes again on a new one, once, for idempotent methods")
    func staleConnectionResent() async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-resent-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        try await withCannedBackend("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", answersPerConnection: 1, accessLog: log) { port in
            let get = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            // The first opens a connection and leaves it idle in the pool; the second finds it closed
            // by the backend, with no retries configured.
            for round in 1...3 {
                let answer = try rawExchange(port, get)
                #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "round \(round): \(answer)")
            }
            let post = try rawExchange(port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            #expect(post.hasSuffix("502 Bad Gateway: canned closed the connection before a response\n"), "not resent: \(post)")
        }
        // The server has shut down: every line is written.
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.map { $0.contains(#""resent":true"#) } == [false, true, true, false], "\(lines)")
    }

    /// Sends `request` on a new connection to `port` and reads until the proxy closes it (or a read has
    /// waited 10 s).
    private func rawExchange(_ port: Int, _ request: String) throws -> String {
        let fd = try connectLoopback(port)
        defer { close(fd) }
        _ = request.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, 0) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }
}

/// Answers every request head it reads with `response`, and leaves the connection open; past `answers`
/// requests on a connection, it closes it unanswered.
private final class CannedResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let response: String
    private var answersLeft: Int
    private var received = ""

    init(response: String, answers: Int) {
        self.response = response
        self.answersLeft = answers
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received += String(buffer: self.unwrapInboundIn(data))
        while let end = self.received.range(of: "\r\n\r\n") {
            self.received.removeSubrange(..<end.upperBound)
            guard self.answersLeft > 0 else {
                context.close(promise: nil)
                return
            }
            self.answersLeft -= 1
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: self.response)), promise: nil)
        }
    }
}
