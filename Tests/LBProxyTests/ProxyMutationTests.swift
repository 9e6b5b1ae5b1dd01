import Foundation
import LBConfig
import LBCore
import LBHTTP
import LBTesting
import NIOCore
import Testing

@testable import LBProxy

#if canImport(Glibc)
import Glibc
#endif

/// A running proxy sent requests mutated at random (fixed seeds), a hundred connections at a time: it
/// answers each with HTTP or closes it, gives back every backend place the requests took, and serves
/// a plain request afterwards.
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

    @Test("a thousand mutated requests", arguments: 0..<2)
    func mutated(seed: UInt64) async throws {
        try await withBackends(["b1", "b2"], { _ in }) { specs in
            var service = Service(name: "s", algorithm: .leastConnections, backends: specs)
            service.timeouts.clientIdle = .milliseconds(200)
            service.timeouts.request = .seconds(2)
            let server = try ProxyServer(configuration: .onLoopback([service], threads: 2))
            let port = try await server.start()[0].port!
            var generator = SeededGenerator(seed: 0x9A0C_0000 + seed)
            var answered = 0
            var statuses: [Int: Int] = [:]
            for batch in 0..<10 {
                var connections: [(fd: Int32, sent: [UInt8])] = []
                for index in 0..<100 {
                    let request = Self.requests[(batch * 100 + index) % Self.requests.count]
                    let bytes = Mutation.mutated(Array(request.utf8), using: &generator)
                    let fd = try connectLoopback(port)
                    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    connections.append((fd, bytes))
                }
                // Long enough for an answer, and for the client-idle timeout to end a head cut short.
                try await Task.sleep(for: .milliseconds(400))
                for (fd, sent) in connections {
                    var received: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 65_536)
                    while true {
                        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                        guard count > 0 else { break }
                        received += buffer[0..<count]
                    }
                    close(fd)
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
            #expect(answered > 800 && (statuses[200] ?? 0) > 100 && (statuses[400] ?? 0) > 100, "\(answered) answered: \(statuses)")
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        }
    }

    /// Waits up to 5 s for `condition`.
    func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<250 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }
}
