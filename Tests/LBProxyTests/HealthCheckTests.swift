import Foundation
import LBBackend
import LBConfig
import LBCore
import LBTesting
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import LBProxy

/// Active health checks against real listeners on loopback.
@Suite("Active health checks", .serialized)
struct HealthCheckTests {
    /// Changes heard, with when (monotonic nanoseconds).
    final class Heard: Sendable {
        let changes = Mutex<[(change: HealthChange, at: UInt64)]>([])
        func add(_ change: HealthChange) {
            self.changes.withLock { $0.append((change, DispatchTime.now().uptimeNanoseconds)) }
        }
        func first(_ isUp: Bool, after: UInt64) -> UInt64? {
            self.changes.withLock { $0.first { $0.change.isUp == isUp && $0.at >= after }?.at }
        }
    }

    func waitFor(_ condition: () -> Bool, seconds: Double = 5) async throws {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        while !condition(), DispatchTime.now().uptimeNanoseconds < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test(
        "a stopped backend is down within fall × interval (+ timeout), and back within rise × interval",
        arguments: [Service.HealthCheck.Probe.tcp, .http(path: "/health", expectStatus: 200)]
    )
    func downAndUp(_ probe: Service.HealthCheck.Probe) async throws {
        let interval = Duration.milliseconds(100)
        let timing = HealthCheckConfiguration(interval: interval, timeout: .milliseconds(50), rise: 2, fall: 3)
        // The slack: timers on a busy machine, and the probe in flight when the change happens.
        let slackNanos: UInt64 = 150_000_000
        let heard = Heard()
        let port = try await withSyntheticBackend { $0.port }
        let address = HostPort(host: "127.0.0.1", port: port)
        var service = Service(name: "s", backends: [BackendSpec(name: "b1", address: address)])
        service.health = Service.HealthCheck(probe: probe, timing: timing)
        let configuration = ProxyConfiguration.onLoopback([service], threads: 1)
        let server = try ProxyServer(configuration: configuration) { heard.add($0) }
        let state = server.runtime.services[0].backends[0].state
        try await withSyntheticBackend({ $0.listen = address }) { _ in
            _ = try await server.start()
            try await Task.sleep(for: .milliseconds(350))  // a few passing checks: still up, nothing heard
            #expect(state.isHealthy && heard.changes.withLock { $0.isEmpty })
        }
        let stopped = DispatchTime.now().uptimeNanoseconds
        try await waitFor { !state.isHealthy }
        let down = try #require(heard.first(false, after: stopped))
        let downBound = UInt64(timing.fall) * UInt64(interval.nanoseconds) + UInt64(timing.timeout.nanoseconds) + slackNanos
        #expect(down - stopped <= downBound, "down after \((down - stopped) / 1_000_000) ms")
        #expect(down - stopped >= UInt64(timing.fall - 1) * UInt64(interval.nanoseconds), "not before fall checks failed")
        try await withSyntheticBackend({ $0.listen = address }) { _ in
            let restarted = DispatchTime.now().uptimeNanoseconds
            try await waitFor { state.isHealthy }
            let up = try #require(heard.first(true, after: restarted))
            let upBound = UInt64(timing.rise) * UInt64(interval.nanoseconds) + slackNanos
            #expect(up - restarted <= upBound, "up after \((up - restarted) / 1_000_000) ms")
        }
        await server.shutdown(grace: .zero)
        let changes = heard.changes.withLock { $0.map(\.change) }
        #expect(changes.map(\.isUp) == [false, true])
        #expect(changes.first?.description.hasPrefix("s/b1 is down after 3 failed checks") == true, "\(changes)")
    }

    @Test("a reload turns checks on, and off: a backend they took down comes back")
    func reloaded() async throws {
        let heard = Heard()
        try await withSyntheticBackend { address in
            let configuration = ProxyConfiguration.onLoopback([Service(name: "s", backends: [BackendSpec(name: "b1", address: address)])], threads: 1)
            let server = try ProxyServer(configuration: configuration) { heard.add($0) }
            _ = try await server.start()
            let state = server.runtime.services[0].backends[0].state
            var checked = configuration
            checked.services[0].health = Service.HealthCheck(
                probe: .http(path: "/health", expectStatus: 204),
                timing: HealthCheckConfiguration(interval: .milliseconds(50), timeout: .milliseconds(40), rise: 1, fall: 1)
            )
            #expect(await server.reload(checked).applied == ["s: health"])
            // The checker looks for changes once a second.
            try await waitFor({ !state.isHealthy }, seconds: 5)
            #expect(!state.isHealthy)
            #expect(await server.reload(configuration).applied == ["s: health checks off"])
            try await waitFor({ state.isHealthy }, seconds: 5)
            #expect(state.isHealthy)
            await server.shutdown(grace: .zero)
            let changes = heard.changes.withLock { $0.map(\.change) }
            #expect(changes.map(\.isUp) == [false, true], "\(changes)")
            #expect(changes.last?.detail == "health checks turned off")
        }
    }

    @Test("a service a reload adds is checked; one it removes is checked no more")
    func reloadedServices() async throws {
        // A listener that counts the connections made to it: the TCP checks of the added service.
        final class Probes: Sendable { let count = Atomic<Int>(0) }
        let probes = Probes()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                probes.count.add(1, ordering: .relaxed)
                return channel.close()
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let probed = HostPort(host: "127.0.0.1", port: listener.localAddress!.port!)
        try await withSyntheticBackend { address in
            let configuration = ProxyConfiguration.onLoopback([Service(name: "s", backends: [BackendSpec(name: "b1", address: address)])], threads: 1)
            let server = try ProxyServer(configuration: configuration)
            _ = try await server.start()
            var added = configuration
            var checked = Service(name: "t", backends: [BackendSpec(name: "b2", address: probed)])
            checked.route = Service.Route(hosts: ["t.test"])
            checked.health = Service.HealthCheck(
                probe: .tcp,
                timing: HealthCheckConfiguration(interval: .milliseconds(50), timeout: .milliseconds(40), rise: 1, fall: 1)
            )
            added.services.append(checked)
            #expect(await server.reload(added).applied == ["added service t"])
            // The checker looks for changes once a second.
            try await waitFor({ probes.count.load(ordering: .relaxed) >= 3 }, seconds: 5)
            #expect(probes.count.load(ordering: .relaxed) >= 3, "the new service's backend is probed")
            #expect(await server.reload(configuration).applied == ["removed service t"])
            try await Task.sleep(for: .milliseconds(1_300))
            let count = probes.count.load(ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(400))
            #expect(probes.count.load(ordering: .relaxed) == count, "probed no more (every 50 ms it would be)")
            await server.shutdown(grace: .zero)
        }
        try await listener.close()
        try await group.shutdownGracefully()
    }

    @Test("an HTTP check fails on the wrong status")
    func wrongStatus() async throws {
        let heard = Heard()
        try await withSyntheticBackend { address in
            var service = Service(name: "s", backends: [BackendSpec(name: "b1", address: address)])
            service.health = Service.HealthCheck(
                probe: .http(path: "/health", expectStatus: 204),
                timing: HealthCheckConfiguration(interval: .milliseconds(50), timeout: .milliseconds(40), rise: 1, fall: 1)
            )
            let configuration = ProxyConfiguration.onLoopback([service], threads: 1)
            let server = try ProxyServer(configuration: configuration) { heard.add($0) }
            _ = try await server.start()
            try await waitFor { heard.changes.withLock { !$0.isEmpty } }
            await server.shutdown(grace: .zero)
            let change = try #require(heard.changes.withLock { $0.first?.change })
            #expect(!change.isUp && change.detail == "status 200")
        }
    }
}
