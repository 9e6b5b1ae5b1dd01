import LBConfig
import LBCore
import LBTesting
import Testing

@testable import LBProxy

/// TCP listeners: each connection relayed whole to one backend.
@Suite("TCP listeners", .serialized)
struct TCPProxyTests {
    @Test("each connection goes whole to one backend, in turn; a refused backend is replaced; bytes pass both ways")
    func relay() async throws {
        let deadPort = try await withSyntheticBackend { address in address.port }
        try await withSyntheticBackend(name: "b1") { b1 in
            try await withSyntheticBackend(name: "b2") { b2 in
                let service = Service(
                    name: "raw",
                    algorithm: .roundRobin,
                    backends: [
                        BackendSpec(name: "dead", address: HostPort(host: "127.0.0.1", port: deadPort)),
                        BackendSpec(name: "b1", address: b1),
                        BackendSpec(name: "b2", address: b2),
                    ]
                )
                var configuration = ProxyConfiguration.onLoopback([service], threads: 1)
                configuration.listeners = [ProxyConfiguration.Listener(address: HostPort(host: "127.0.0.1", port: 0), mode: .tcp, service: "raw")]
                #expect(configuration.problems().isEmpty, "\(configuration.problems())")
                let server = try ProxyServer(configuration: configuration)
                let port = try await server.start()[0].port!
                var served: [String] = []
                for _ in 0..<4 {
                    // Two requests on one connection: both reach the connection's backend.
                    let request = "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                    let text = try rawExchange(port, request, responses: 2)
                    let backends = text.components(separatedBy: "\r\n").filter { $0.hasPrefix("X-LBLab-Backend: ") }
                    #expect(backends.count == 2 && Set(backends).count == 1, "\(text)")
                    #expect(!text.contains("X-Forwarded-For"), "bytes pass untouched")
                    served.append(backends.first ?? "none")
                }
                // Round robin offers dead, b1, b2, dead, b1, b2: each time dead refuses, the next takes it.
                #expect(served == ["X-LBLab-Backend: b1", "X-LBLab-Backend: b2", "X-LBLab-Backend: b1", "X-LBLab-Backend: b2"], "\(served)")
                // The last connection's close reaches the proxy after the client stopped reading.
                var waited = 0
                while server.requestsInFlight > 0 && waited < 100 {
                    try await Task.sleep(for: .milliseconds(10))
                    waited += 1
                }
                #expect(server.requestsInFlight == 0, "a closed connection gives its backend's place back")
                #expect(await server.shutdown(grace: .seconds(5)) == 0)
            }
        }
    }

    @Test("4 MiB up and back through a TCP listener arrive intact")
    func largeTransfer() async throws {
        try await withSyntheticBackend(name: "b1", { $0.echo = true }) { b1 in
            var configuration = ProxyConfiguration.onLoopback([Service(name: "raw", backends: [BackendSpec(name: "b1", address: b1)])], threads: 1)
            configuration.listeners = [ProxyConfiguration.Listener(address: HostPort(host: "127.0.0.1", port: 0), mode: .tcp, service: "raw")]
            let server = try ProxyServer(configuration: configuration)
            let port = try await server.start()[0].port!
            var generator = SeededGenerator(seed: 4)
            let body = (0..<(4 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let request = Array("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
            let (head, received) = try rawRequest(port, request)
            #expect(head.hasPrefix("HTTP/1.1 200 OK"), "\(head)")
            #expect(received == body, "\(received.count) bytes back of \(body.count)")
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        }
    }
}
