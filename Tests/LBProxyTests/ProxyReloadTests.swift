import Foundation
import LBBackend
import LBConfig
import LBCore
import LBLoad
import LBTesting
import Testing

@testable import LBProxy

#if canImport(Glibc)
import Glibc
#endif

/// Reloads of a running proxy, on loopback in this process: what each part of the file changes, and
/// that requests in flight come through.
@Suite("Proxy reloads on loopback", .serialized)
struct ProxyReloadTests {
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
            async let load = closedLoad(proxy, requests: 4, connections: 4)
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
                    try rawRequest(port, Array("GET / HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8))
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
                let request = Task.detached { try rawRequest(port, Array("GET / HTTP/1.1\r\nHost: v2.test\r\n\r\n".utf8)).head }
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
            #expect(throws: (any Error).self) { close(try connectLoopback(first)) }
            #expect(try rawRequest(http, get).head.hasPrefix("HTTP/1.1 200 "))
            #expect(try rawRequest(http, hostless).head.hasPrefix("HTTP/1.1 400 "))
            #expect(throws: (any Error).self) { close(try connectLoopback(firstAdmin)) }
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
}
