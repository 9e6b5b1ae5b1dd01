import Foundation
import LBBackend
import LBConfig
import LBCore
import LBLoad
import LBTesting
import Synchronization
import Testing

@testable import LBProxy

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The proxy in front of synthetic backends, all on loopback in this process.
@Suite("Proxy on loopback", .serialized)
struct ProxyEndToEndTests {
    /// Runs `body` with three backends `b1`…`b3` (configured by `configure`) behind a proxy built by
    /// `makeService`, handing it the proxy's address.
    func withProxy(
        backends names: [String] = ["b1", "b2", "b3"],
        configure: @escaping (inout BackendConfiguration) -> Void = { _ in },
        _ makeService: ([BackendSpec]) -> Service,
        _ body: (HostPort) async throws -> Void
    ) async throws {
        try await withBackends(names, configure) { specs in
            let configuration = ProxyConfiguration.onLoopback([makeService(specs)], threads: 2)
            #expect(configuration.problems().isEmpty)
            let server = try ProxyServer(configuration: configuration)
            let address = try await server.start()[0]
            do {
                try await body(HostPort(host: "127.0.0.1", port: address.port!))
            } catch {
                await server.shutdown(grace: .zero)
                throw error
            }
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        }
    }

    @Test("round robin: each of three backends serves a third, and the response names it")
    func roundRobinShares() async throws {
        try await withProxy({ Service(name: "s", algorithm: .roundRobin, backends: $0) }) { proxy in
            // Each of the two event loops rotates on its own: a loop's count per backend is exact up to
            // its last, unfinished rotation, so each share is within 2 of 200.
            let statistics = try await closedLoad(proxy, requests: 600)
            #expect(statistics.statuses == [200: 600])
            #expect(statistics.backends.keys.sorted() == ["b1", "b2", "b3"])
            #expect(statistics.backends.values.allSatisfy { abs($0 - 200) <= 2 }, "\(statistics.backends)")
        }
    }

    @Test("smooth weighted round robin: weights 1, 1, 2 give shares 1/4, 1/4, 1/2")
    func weightedShares() async throws {
        try await withProxy({ specs in
            var weighted = specs
            weighted[2].weight = 2
            return Service(name: "s", algorithm: .weightedRoundRobin, backends: weighted)
        }) { proxy in
            // Each of the two event loops runs its own exact cycle of 4 (b1, b3, b2, b3 or the like): up to
            // the last, unfinished cycle of each, so each share is within 2 per loop of exact.
            let statistics = try await closedLoad(proxy, requests: 800)
            #expect(statistics.statuses == [200: 800])
            #expect(abs(statistics.backends["b1", default: 0] - 200) <= 4, "\(statistics.backends)")
            #expect(abs(statistics.backends["b2", default: 0] - 200) <= 4, "\(statistics.backends)")
            #expect(abs(statistics.backends["b3", default: 0] - 400) <= 4, "\(statistics.backends)")
        }
    }

    @Test("least connections sends nothing to a backend that holds its requests for long")
    func leastConnectionsAvoidsSlow() async throws {
        try await withProxy(configure: { backend in
            if backend.name == "b3" { backend.settings.latency = .fixed(.milliseconds(200)) }
        }, { Service(name: "s", algorithm: .leastConnections, backends: $0) }) { proxy in
            let statistics = try await closedLoad(proxy, requests: 600, connections: 4)
            #expect(statistics.statuses == [200: 600])
            // While b3 holds a request for 200 ms, the fast backends finish hundreds: b3 gets a handful.
            #expect(statistics.backends["b3", default: 0] < 30, "\(statistics.backends)")
        }
    }

    /// Least-connections and the other load-aware algorithms keep choosing a backend that fails fast (it
    /// never holds a request); a retry must still go elsewhere.
    @Test(
        "a backend that refuses connections is retried on another: no client sees an error",
        arguments: [Algorithm.roundRobin, .leastConnections, .powerOfTwo, .peakEWMA]
    )
    func deadBackendRetried(_ algorithm: Algorithm) async throws {
        let deadPort = try await withSyntheticBackend { address in address.port }  // stopped: now refuses
        try await withProxy({ specs in
            Service(name: "s", algorithm: algorithm, backends: specs.dropLast() + [BackendSpec(name: "dead", address: HostPort(host: "127.0.0.1", port: deadPort))])
        }) { proxy in
            let statistics = try await closedLoad(proxy, requests: 300)
            #expect(statistics.statuses == [200: 300] && statistics.errors.isEmpty)
            #expect(statistics.backends["dead"] == nil)
            #expect(statistics.backends["b1", default: 0] + statistics.backends["b2", default: 0] == 300)
        }
    }

    @Test("a backend answering 500 is retried within the budget; with a budget of zero, not at all")
    func retryBudgetRespected() async throws {
        for (budget, expectedErrors) in [(Service.RetryBudgetSettings(), 0), (.init(share: 0, minimumConcurrency: 0), 150)] {
            try await withProxy(backends: ["b1", "bad"], configure: { if $0.name == "bad" { $0.settings.errorRate = 1 } }, { specs in
                var service = Service(name: "s", algorithm: .roundRobin, backends: specs)
                service.retries.retryOn = [.anyServerError]
                service.retryBudget = budget
                return service
            }) { proxy in
                // Round robin over two backends on each of two loops: half the first attempts, within 2,
                // meet the failing one.
                let statistics = try await closedLoad(proxy, requests: 300, connections: 2)
                #expect(abs(statistics.statuses[500, default: 0] - expectedErrors) <= 2, "budget \(budget): \(statistics.statuses)")
                #expect(statistics.statuses[200, default: 0] + statistics.statuses[500, default: 0] == 300)
            }
        }
    }

    @Test("killing 1 of 3 backends at 1,000 req/s of GETs: no client error, and it is marked down in time")
    func killOneOfThree() async throws {
        let victim = try SyntheticBackend(configuration: BackendConfiguration(name: "b3", listen: HostPort(host: "127.0.0.1", port: 0)))
        let victimAddress = try await victim.start()
        let timing = HealthCheckConfiguration(interval: .milliseconds(100), timeout: .milliseconds(50), rise: 2, fall: 2)
        let downAt = Mutex<UInt64?>(nil)
        try await withBackends(["b1", "b2"], { _ in }) { specs in
            var service = Service(name: "s", algorithm: .roundRobin, backends: specs + [BackendSpec(name: "b3", address: victimAddress)])
            service.health = Service.HealthCheck(probe: .tcp, timing: timing)
            service.retries.retryOn = [.connectFailure, .reset, .badGateway, .serviceUnavailable, .gatewayTimeout]
            let configuration = ProxyConfiguration.onLoopback([service], threads: 2)
            let server = try ProxyServer(configuration: configuration) { change in
                if !change.isUp { downAt.withLock { $0 = $0 ?? DispatchTime.now().uptimeNanoseconds } }
            }
            let proxy = try await server.start()[0]
            var load = LoadConfiguration(
                target: .init(host: "127.0.0.1", port: proxy.port!, path: "/"),
                clients: 20,
                pacing: .openLoop(ratePerClient: 50, arrival: .constant)
            )
            load.duration = .seconds(2)
            async let report = LoadRun(configuration: load, sink: nil).run()
            try await Task.sleep(for: .milliseconds(700))
            let killed = DispatchTime.now().uptimeNanoseconds
            try await victim.stop()
            let statistics = try await report.statistics
            await server.shutdown(grace: .seconds(5))
            #expect(statistics.sent == 2_000)
            #expect(statistics.statuses == [200: statistics.sent], "\(statistics.statuses) \(statistics.errors)")
            #expect(statistics.errors.isEmpty)
            let down = try #require(downAt.withLock { $0 }, "b3 was never marked down")
            // fall × interval, plus the probe timeout, plus timer slack on a busy machine.
            #expect(down - killed <= 2 * 100_000_000 + 50_000_000 + 150_000_000, "down after \((down - killed) / 1_000_000) ms")
            // Before it was down, b3 served its share; after, the others took everything.
            #expect(statistics.backends["b3", default: 0] > 100 && statistics.backends["b3", default: 0] < 700, "\(statistics.backends)")
        }
    }

    @Test("502, 503, 504 and 404 say what happened")
    func errorResponses() async throws {
        let deadPort = try await withSyntheticBackend { address in address.port }
        let dead = BackendSpec(name: "dead", address: HostPort(host: "127.0.0.1", port: deadPort))
        try await withProxy(configure: { $0.settings.latency = .fixed(.seconds(2)) }, { specs in
            var service = Service(name: "slow", algorithm: .roundRobin, backends: specs)
            service.route = Service.Route(hosts: ["slow.test"])
            service.timeouts.responseHeader = .milliseconds(200)
            service.retries.maxRetries = 0
            return service
        }) { proxy in
            let (status, body) = try await get(proxy, host: "slow.test")
            #expect(status == 504 && body.hasPrefix("504 Gateway Timeout: no response header from b"), "\(body)")
            let (missing, missingBody) = try await get(proxy, host: "other.test")
            #expect(missing == 404 && missingBody.contains("no service for host other.test"), "\(missingBody)")
        }
        try await withProxy(backends: [], { _ in Service(name: "s", backends: [dead]) }) { proxy in
            let (status, body) = try await get(proxy, host: "any.test")
            #expect(status == 502 && body.contains("could not connect to dead"), "\(body)")
        }
    }

    @Test("pipelined requests are answered in order, one backend each")
    func pipelining() async throws {
        try await withProxy({ Service(name: "s", algorithm: .roundRobin, backends: $0) }) { proxy in
            let request = "GET /a HTTP/1.1\r\nHost: p.test\r\n\r\n"
            let text = try rawExchange(proxy.port, String(repeating: request, count: 3), responses: 3)
            let backends = text.components(separatedBy: "\r\n").filter { $0.hasPrefix("X-LBLab-Backend: ") }
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 4, "\(text)")
            #expect(Set(backends).count == 3, "round robin: three requests, three backends: \(backends)")
        }
    }

    @Test("bodies of 0 B, 1 MiB and chunked arrive intact both ways", arguments: [0, 1 << 20, -(1 << 20)])
    func bodies(_ size: Int) async throws {
        try await withProxy(backends: ["b1"], configure: { $0.echo = true }, { Service(name: "s", backends: $0) }) { proxy in
            var generator = SeededGenerator(seed: UInt64(abs(size)))
            let body = (0..<abs(size)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var request = Array("POST /echo HTTP/1.1\r\nHost: b.test\r\n".utf8)
            if size >= 0 {
                request += Array("Content-Length: \(body.count)\r\n\r\n".utf8) + body
            } else {
                // Chunks of uneven sizes, then the last chunk.
                request += Array("Transfer-Encoding: chunked\r\n\r\n".utf8)
                var offset = 0
                var length = 1
                while offset < body.count {
                    let end = min(body.count, offset + length)
                    request += Array(String(end - offset, radix: 16).utf8) + [13, 10] + body[offset..<end] + [13, 10]
                    offset = end
                    length = length * 3 + 7
                }
                request += Array("0\r\n\r\n".utf8)
            }
            let (head, received) = try rawRequest(proxy.port, request)
            #expect(head.hasPrefix("HTTP/1.1 200 OK"), "\(head)")
            #expect(head.lowercased().contains(size < 0 ? "transfer-encoding: chunked" : "content-length: \(body.count)"), "\(head)")
            #expect(received == body, "\(received.count) bytes back of \(body.count)")
        }
    }

    @Test("on one keep-alive connection, heads of 6 KiB and of a few bytes in turn each go whole, and each echo comes back its own")
    func reusedBuffers() async throws {
        // The proxy keeps each request's buffers for the next one: none may carry a byte of another.
        try await withProxy(backends: ["b1"], configure: { $0.echo = true }, { Service(name: "s", backends: $0) }) { proxy in
            let fd = try connectLoopback(proxy.port)
            defer { close(fd) }
            for round in 0..<6 {
                let pad = round.isMultiple(of: 2) ? String(repeating: "p", count: 6_000) : "q"
                let body = Array("body \(round) ".utf8) + [UInt8](repeating: UInt8(97 + round), count: round * 100)
                let request = Array("POST /echo HTTP/1.1\r\nHost: b.test\r\nX-Pad: \(pad)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
                let (head, received) = try rawRequest(on: fd, request)
                #expect(head.hasPrefix("HTTP/1.1 200 OK"), "round \(round): \(head)")
                let intact = received == body
                #expect(intact, "round \(round): \(received.count) bytes back of \(body.count), starting \(String(decoding: received.prefix(40), as: UTF8.self))")
            }
        }
    }

    @Test("a client that asks to close gets the backend's whole answer, then the close", arguments: ["HTTP/1.1", "HTTP/1.0"])
    func answerBeforeClose(version: String) async throws {
        // Answers go out when the event loop's tick ends, and a close fails what is not flushed yet:
        // the proxy must flush before it closes.
        try await withProxy(backends: ["b1"], configure: { $0.echo = true }, { Service(name: "s", backends: $0) }) { proxy in
            for round in 0..<5 {
                let body = Array("round \(round) ".utf8) + [UInt8](repeating: 120, count: round * 1_000)
                let close = version == "HTTP/1.1" ? "Connection: close\r\n" : ""
                let request = Array("POST /echo \(version)\r\nHost: b.test\r\n\(close)Content-Length: \(body.count)\r\n\r\n".utf8) + body
                let fd = try connectLoopback(proxy.port)
                defer { Glibc.close(fd) }
                let (head, received) = try rawRequest(on: fd, request)
                #expect(head.contains(" 200 OK") && head.lowercased().contains("connection: close"), "\(head)")
                #expect(received == body, "\(received.count) bytes back of \(body.count)")
                var byte: UInt8 = 0
                #expect(recv(fd, &byte, 1, 0) == 0, "then the proxy closes the connection")
            }
        }
    }

    @Test("a client that waits for 100 Continue before its body gets it from the backend through the proxy, then the echo")
    func continueRelayed() async throws {
        try await withProxy(backends: ["b1"], configure: { $0.echo = true }, { Service(name: "s", backends: $0) }) { proxy in
            let fd = try connectLoopback(proxy.port)
            defer { close(fd) }
            let body = [UInt8](repeating: 0x6B, count: 5_000)
            let head = Array("POST /echo HTTP/1.1\r\nHost: b.test\r\nExpect: 100-continue\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
            #expect(head.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } == head.count)
            // The body waits for the interim answer, as curl's does (for a second at most).
            var interim: [UInt8] = []
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while !String(decoding: interim, as: UTF8.self).contains("\r\n\r\n"), poll(&ready, 1, 2_000) == 1 {
                var buffer = [UInt8](repeating: 0, count: 4_096)
                let count = recv(fd, &buffer, buffer.count, 0)
                guard count > 0 else { break }
                interim += buffer[0..<count]
            }
            #expect(String(decoding: interim, as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
            let (final, received) = try rawRequest(on: fd, body)
            #expect(final.hasPrefix("HTTP/1.1 200 OK"), "\(final)")
            #expect(received == body)
        }
    }

    func get(_ proxy: HostPort, host: String) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(proxy.port)/")!)
        request.setValue(host, forHTTPHeaderField: "Host")
        request.timeoutInterval = 10
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }
}
