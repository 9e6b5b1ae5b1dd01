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
        try await self.withBackends(names, configure) { specs in
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

    private func withBackends(
        _ names: [String],
        _ configure: @escaping (inout BackendConfiguration) -> Void,
        _ body: ([BackendSpec]) async throws -> Void
    ) async throws {
        guard let name = names.first else { return try await body([]) }
        try await withSyntheticBackend(name: name, configure) { address in
            try await self.withBackends(Array(names.dropFirst()), configure) { rest in
                try await body([BackendSpec(name: name, address: address)] + rest)
            }
        }
    }

    func closedLoad(_ proxy: HostPort, requests: Int, connections: Int = 6) async throws -> LoadStatistics {
        var configuration = LoadConfiguration(
            target: .init(host: proxy.host, port: proxy.port, path: "/"),
            clients: connections,
            pacing: .closedLoop(connections: connections)
        )
        configuration.requests = requests
        configuration.timeout = .seconds(10)
        return try await LoadRun(configuration: configuration, sink: nil).run().statistics
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
        try await self.withBackends(["b1", "b2"], { _ in }) { specs in
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

    @Test("a reload changes the algorithm, the hash key and the timeouts of a running service")
    func reloadRetunes() async throws {
        try await withBackends(["b1", "b2"], { $0.settings.latency = .fixed(.milliseconds(100)) }) { specs in
            let configuration = ProxyConfiguration.onLoopback([Service(name: "s", algorithm: .roundRobin, backends: specs)], threads: 2)
            let server = try ProxyServer(configuration: configuration)
            let address = try await server.start()[0]
            let proxy = HostPort(host: "127.0.0.1", port: address.port!)
            let spread = try await closedLoad(proxy, requests: 12)
            #expect(spread.statuses == [200: 12] && spread.backends.keys.sorted() == ["b1", "b2"], "\(spread.backends)")

            // Every request has the path /: hashed on it, all go to one backend.
            var hashed = configuration
            hashed.services[0].algorithm = .maglev
            hashed.services[0].hashKey = .path
            let outcome = await server.reload(hashed)
            #expect(outcome.applied == ["s: algorithm maglev", "s: hash key"] && outcome.needsRestart.isEmpty, "\(outcome)")
            let pinned = try await closedLoad(proxy, requests: 12)
            #expect(pinned.statuses == [200: 12] && pinned.backends.count == 1, "\(pinned.backends)")

            var hurried = hashed
            hurried.services[0].timeouts.responseHeader = .milliseconds(20)
            hurried.services[0].retries.maxRetries = 0
            #expect(await server.reload(hurried).applied == ["s: retries", "s: timeouts"])
            let late = try await closedLoad(proxy, requests: 6)
            #expect(late.statuses == [504: 6], "\(late.statuses)")
            await server.shutdown(grace: .zero)
        }
    }

    @Test("a reload that raises a backend's connection limit lets the requests waiting for it go at once")
    func reloadLimits() async throws {
        try await withBackends(["b1"], { $0.settings.latency = .fixed(.milliseconds(800)) }) { specs in
            var service = Service(name: "s", backends: specs)
            service.limits = Service.Limits(maxConnections: 1, maxQueued: 8, queueTimeout: .seconds(10))
            let configuration = ProxyConfiguration.onLoopback([service], threads: 1)
            let server = try ProxyServer(configuration: configuration)
            let address = try await server.start()[0]
            let proxy = HostPort(host: "127.0.0.1", port: address.port!)
            let started = ContinuousClock.now
            // Four at once: one in flight, three waiting; served one by one they would take 3.2 s.
            async let load = self.closedLoad(proxy, requests: 4, connections: 4)
            try await Task.sleep(for: .milliseconds(300))
            var raised = configuration
            raised.services[0].limits.maxConnections = 4
            #expect(await server.reload(raised).applied == ["s: limits"])
            let statistics = try await load
            let elapsed = ContinuousClock.now - started
            #expect(statistics.statuses == [200: 4], "\(statistics.statuses)")
            // The first ends at 0.8 s; the three let through at 0.3 s end by 1.1 s (2.4 s without the reload).
            #expect(elapsed < .milliseconds(2_000), "\(elapsed)")
            await server.shutdown(grace: .zero)
        }
    }

    @Test("a reload starts a service and routes to it, moves its route, and retires it while its request in flight finishes")
    func reloadServices() async throws {
        try await withBackends(["b1", "b2"], { $0.settings.latency = .fixed(.milliseconds(0)) }) { specs in
            let web = Service(name: "web", backends: [specs[0]])
            let configuration = ProxyConfiguration.onLoopback([web], threads: 2)
            let server = try ProxyServer(configuration: configuration)
            let port = try await server.start()[0].port!
            func served(_ host: String) async throws -> String {
                let (head, _) = try await Task.detached {
                    try self.rawRequest(port, Array("GET / HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8))
                }.value
                let status = head.split(separator: " ").dropFirst().first.map(String.init) ?? head
                let backend = head.components(separatedBy: "\r\n").first { $0.hasPrefix("X-LBLab-Backend: ") }?.dropFirst(17)
                return backend.map(String.init) ?? status
            }
            // Every loop must see each change: ask more times than there are loops.
            func everyLoop(_ host: String) async throws -> Set<String> {
                var seen: Set<String> = []
                for _ in 0..<6 { seen.insert(try await served(host)) }
                return seen
            }
            #expect(try await everyLoop("api.test") == ["b1"])

            var added = configuration
            var api = Service(name: "api", backends: [specs[1]])
            api.route = Service.Route(hosts: ["api.test"])
            added.services.append(api)
            #expect(await server.reload(added).applied == ["added service api"])
            #expect(try await everyLoop("api.test") == ["b2"])
            #expect(try await everyLoop("www.test") == ["b1"])

            var moved = added
            moved.services[1].route = Service.Route(hosts: ["v2.test"])
            #expect(await server.reload(moved).applied == ["api: match"])
            #expect(try await everyLoop("api.test") == ["b1"])
            #expect(try await everyLoop("v2.test") == ["b2"])

            // A slow request on api, then api goes: the request finishes; the next goes to web.
            try await withSyntheticBackend(name: "b3", { $0.settings.latency = .fixed(.milliseconds(600)) }) { b3 in
                var slow = moved
                slow.services[1].backends = [BackendSpec(name: "b3", address: b3)]
                #expect(await server.reload(slow).applied == ["api: removed b2", "api: added b3"])
                let request = Task.detached { try self.rawRequest(port, Array("GET / HTTP/1.1\r\nHost: v2.test\r\n\r\n".utf8)).head }
                try await Task.sleep(for: .milliseconds(200))
                var removed = slow
                removed.services.removeLast()
                #expect(await server.reload(removed).applied == ["removed service api"])
                let inFlight = try await request.value
                #expect(inFlight.hasPrefix("HTTP/1.1 200 "), "\(inFlight)")
                #expect(inFlight.components(separatedBy: "\r\n").contains("X-LBLab-Backend: b3"), "\(inFlight)")
            }
            #expect(try await everyLoop("v2.test") == ["b1"])
            let metrics = AdminAPI(runtime: server.runtime, token: nil) { _ in true }
            let text = String(decoding: await metrics.handle(.init(method: "GET", target: "/metrics")).body, as: UTF8.self)
            #expect(!text.contains(#"service="api""#) && text.contains(#"service="web""#))
            #expect(server.runtime.services.map(\.settings.name) == ["web"])
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        }
    }

    @Test("a reload stops a listener it drops (its open connection goes on), listens as it adds, TCP too, and moves the admin API")
    func reloadListeners() async throws {
        try await withBackends(["b1"], { _ in }) { specs in
            let configuration = ProxyConfiguration.onLoopback([Service(name: "web", backends: specs)], threads: 1)
            let server = try ProxyServer(configuration: configuration)
            let first = try await server.start()[0].port!
            let firstAdmin = try #require(server.adminAddress?.port)
            let get = Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
            let open = try connectLoopback(first)
            defer { close(open) }
            #expect(try rawRequest(on: open, get).head.hasPrefix("HTTP/1.1 200 "))

            let (http, tcp, admin) = (try freePort(), try freePort(), try freePort())
            var moved = configuration
            var db = Service(name: "db", backends: specs)
            db.route = Service.Route(hosts: ["db.test"])
            moved.services.append(db)
            moved.listeners = [.init(address: HostPort(host: "127.0.0.1", port: http)), .init(address: HostPort(host: "127.0.0.1", port: tcp), mode: .tcp, service: "db")]
            moved.admin.address = HostPort(host: "127.0.0.1", port: admin)
            let outcome = await server.reload(moved)
            #expect(
                outcome.applied == [
                    "added service db", "listening on 127.0.0.1:\(http)", "listening on 127.0.0.1:\(tcp) (tcp to db)",
                    "stopped listening on 127.0.0.1:0", "admin on 127.0.0.1:\(admin)",
                ],
                "\(outcome)"
            )
            #expect(outcome.failed.isEmpty && outcome.needsRestart.isEmpty, "\(outcome)")
            // First on the loop since the reload: a connection to the new service's TCP listener. Without
            // the Host an HTTP listener requires (RFC 9112 3.2), the backend, reached as bytes, answers.
            let hostless = Array("GET / HTTP/1.1\r\n\r\n".utf8)
            #expect(try rawRequest(tcp, hostless).head.hasPrefix("HTTP/1.1 200 "))
            #expect(try rawRequest(on: open, get).head.hasPrefix("HTTP/1.1 200 "), "the connection the old listener took goes on")
            #expect(throws: (any Error).self) { close(try self.connectLoopback(first)) }
            #expect(try rawRequest(http, get).head.hasPrefix("HTTP/1.1 200 "))
            #expect(try rawRequest(http, hostless).head.hasPrefix("HTTP/1.1 400 "))
            #expect(throws: (any Error).self) { close(try self.connectLoopback(firstAdmin)) }
            #expect(try rawRequest(admin, Array("GET /health HTTP/1.1\r\nHost: a\r\n\r\n".utf8)).head.hasPrefix("HTTP/1.1 200 "))

            // Moving to where something else listens fails, and says so: the proxy goes on listening
            // where it did, and takes the rest of the file.
            var taken = moved
            taken.listeners[0] = .init(address: HostPort(host: "127.0.0.1", port: admin))
            taken.services[0].algorithm = .leastConnections
            let clash = await server.reload(taken)
            #expect(clash.applied == ["web: algorithm least-connections"], "\(clash)")
            #expect(clash.failed.count == 1, "\(clash)")
            #expect(clash.failed.first?.hasPrefix("cannot listen on 127.0.0.1:\(admin): ") == true, "\(clash)")
            #expect(clash.failed.first?.hasSuffix("; still listening on 127.0.0.1:\(http)") == true, "\(clash)")
            #expect(try rawRequest(http, get).head.hasPrefix("HTTP/1.1 200 "))
            #expect(Set(server.runtime.configuration.listeners) == Set(moved.listeners), "what it listens as")

            // The same address from HTTP to TCP: it closes and listens again, now relaying bytes.
            var relayed = taken
            relayed.listeners = moved.listeners
            relayed.listeners[0] = .init(address: HostPort(host: "127.0.0.1", port: http), mode: .tcp, service: "web")
            let swapped = await server.reload(relayed)
            #expect(swapped.applied == ["stopped listening on 127.0.0.1:\(http)", "listening on 127.0.0.1:\(http) (tcp to web)"], "\(swapped)")
            #expect(try rawRequest(http, hostless).head.hasPrefix("HTTP/1.1 200 "))
            await server.shutdown(grace: .zero)
        }
    }

    @Test("twenty reloads under 1,000 req/s, adding and removing a service, a listener and backends, lose no request")
    func reloadsUnderLoad() async throws {
        try await withBackends(["b1", "b2"], { $0.settings.latency = .fixed(.milliseconds(2)) }) { specs in
            let base = ProxyConfiguration.onLoopback([Service(name: "web", backends: specs)], threads: 2)
            var other = base
            other.services[0].algorithm = .leastConnections
            other.services[0].backends = [specs[1]]
            var api = Service(name: "api", backends: specs)
            api.route = Service.Route(hosts: ["api.test"])
            other.services.append(api)
            other.listeners.append(.init(address: HostPort(host: "127.0.0.1", port: try freePort())))
            let server = try ProxyServer(configuration: base)
            let port = try await server.start()[0].port!
            var load = LoadConfiguration(
                target: .init(host: "127.0.0.1", port: port, path: "/"),
                clients: 20,
                pacing: .openLoop(ratePerClient: 50, arrival: .constant)
            )
            load.duration = .seconds(2)
            load.timeout = .seconds(5)
            async let run = LoadRun(configuration: load, sink: nil).run().statistics
            var failed: [String] = []
            for index in 0..<20 {
                try await Task.sleep(for: .milliseconds(90))
                failed += await server.reload(index % 2 == 0 ? other : base).failed
            }
            let statistics = try await run
            #expect(failed.isEmpty, "\(failed)")
            #expect(statistics.errors.isEmpty && statistics.statuses.keys.sorted() == [200], "\(statistics.statuses) \(statistics.errors)")
            #expect(statistics.statuses[200, default: 0] >= 1_900, "\(statistics.statuses)")
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        }
    }

    /// Sends `request` on a new connection to `port` and reads one response: its head, and its body
    /// decoded from Content-Length or chunked framing.
    func rawRequest(_ port: Int, _ request: [UInt8]) throws -> (head: String, body: [UInt8]) {
        let fd = try connectLoopback(port)
        defer { close(fd) }
        return try rawRequest(on: fd, request)
    }

    /// Sends `request` on the connection `fd` and reads one response (see ``rawRequest(_:_:)``).
    func rawRequest(on fd: Int32, _ request: [UInt8]) throws -> (head: String, body: [UInt8]) {
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw POSIXError(.EPIPE) }
            sent += count
        }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        func fill() throws {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { throw POSIXError(.ECONNRESET) }
            data += buffer[0..<count]
        }
        func find(_ pattern: [UInt8], from start: Int) throws -> Int {
            while true {
                if data.count >= pattern.count + start {
                    for index in start...(data.count - pattern.count) where Array(data[index..<index + pattern.count]) == pattern {
                        return index
                    }
                }
                try fill()
            }
        }
        let headEnd = try find([13, 10, 13, 10], from: 0)
        let head = String(decoding: data[0..<headEnd], as: UTF8.self)
        var position = headEnd + 4
        var body: [UInt8] = []
        if let line = head.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }),
            let length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
        {
            while data.count < position + length { try fill() }
            body = Array(data[position..<position + length])
        } else {
            while true {
                let lineEnd = try find([13, 10], from: position)
                let size = Int(String(decoding: data[position..<lineEnd], as: UTF8.self).split(separator: ";")[0], radix: 16) ?? 0
                position = lineEnd + 2
                if size == 0 { break }
                while data.count < position + size + 2 { try fill() }
                body += data[position..<position + size]
                position += size + 2
            }
        }
        return (head, body)
    }

    func connectLoopback(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Writes `request` on a new connection to `port` and reads until `responses` complete responses
    /// (of the synthetic backend's fixed length) have arrived, or 5 s have passed.
    func rawExchange(_ port: Int, _ request: String, responses: Int) throws -> String {
        let fd = try connectLoopback(port)
        defer { close(fd) }
        _ = request.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, 0) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while String(decoding: received, as: UTF8.self).components(separatedBy: "\r\n\r\nxx").count <= responses {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    func get(_ proxy: HostPort, host: String) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(proxy.port)/")!)
        request.setValue(host, forHTTPHeaderField: "Host")
        request.timeoutInterval = 10
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }
}
