import Foundation
import LBConfig
import LBCore
import LBLoad
import LBTesting
import Testing

@testable import LBProxy

/// Outlier ejection and slow start on a running proxy.
@Suite("Outlier ejection and slow start", .serialized)
struct PassiveHealthTests {
    private func load(_ port: Int, requests: Int, connections: Int = 2) async throws -> LoadStatistics {
        var configuration = LoadConfiguration(
            target: .init(host: "127.0.0.1", port: port, path: "/"),
            clients: connections,
            pacing: .closedLoop(connections: connections)
        )
        configuration.requests = requests
        configuration.timeout = .seconds(10)
        return try await LoadRun(configuration: configuration, sink: nil).run().statistics
    }

    private func withProxy(
        _ service: Service,
        recorder: ProxyRecorder? = nil,
        _ body: (ProxyServer, Int) async throws -> Void
    ) async throws {
        let configuration = ProxyConfiguration.onLoopback([service], threads: 1)
        #expect(configuration.problems().isEmpty)
        let server = try ProxyServer(configuration: configuration, recorder: recorder)
        let port = try await server.start()[0].port!
        do {
            try await body(server, port)
        } catch {
            await server.shutdown(grace: .zero)
            throw error
        }
        #expect(await server.shutdown(grace: .seconds(5)) == 0)
    }

    @Test("a backend failing 3 times in a row is ejected for the ejection time, then readmitted")
    func ejection() async throws {
        try await withSyntheticBackend(name: "b1") { b1 in
            try await withSyntheticBackend(name: "b2") { b2 in
                try await withSyntheticBackend(name: "bad", { $0.settings.errorRate = 1 }) { bad in
                    var service = Service(
                        name: "web",
                        algorithm: .roundRobin,
                        backends: [BackendSpec(name: "b1", address: b1), BackendSpec(name: "b2", address: b2), BackendSpec(name: "bad", address: bad)]
                    )
                    service.retries.maxRetries = 0
                    service.outlierDetection = OutlierDetectionConfiguration(consecutiveFailures: 3, baseEjectionTime: .seconds(2))
                    let sink = InMemoryRecordSink()
                    try await withProxy(service, recorder: try ProxyRecorder(sink: sink, accessLogPath: nil)) { server, port in
                        let started = ContinuousClock.now
                        // One connection: a request is picked only once the one before it has ended, so
                        // the third failure has ejected "bad" before round robin would offer it again.
                        let statistics = try await load(port, requests: 60, connections: 1)
                        let elapsed = ContinuousClock.now - started
                        let state = server.runtime.services[0].backend(named: "bad")!.state
                        try #require(elapsed < .seconds(2), "the load must end within the ejection to count on it: \(elapsed)")
                        // Round robin offers "bad" every third pick; its third failure ejects it for the
                        // rest of the run, so exactly three requests fail.
                        #expect(statistics.statuses == [200: 57, 500: 3], "\(statistics.statuses)")
                        #expect(state.isEjected)
                        try await Task.sleep(until: started + .milliseconds(2_500))
                        #expect(!state.isEjected, "readmitted 2 s after its ejection")
                        let kinds = sink.snapshot.events.filter { $0.subject == "bad" }.map(\.kind)
                        #expect(kinds == ["ejected", "readmitted"])
                        let api = AdminAPI(runtime: server.runtime, token: nil) { _ in true }
                        let metrics = String(decoding: await api.handle(.init(method: "GET", target: "/metrics")).body, as: UTF8.self)
                        #expect(metrics.contains(#"lblab_backend_ejections_total{service="web",backend="bad"} 1"#), "\(metrics)")
                    }
                }
            }
        }
    }

    @Test("slow start: a backend that joins gets a share that grows with its weight over the window")
    func slowStart() async throws {
        try await withSyntheticBackend(name: "b1") { b1 in
            try await withSyntheticBackend(name: "b2") { b2 in
                try await withSyntheticBackend(name: "b3") { b3 in
                    var service = Service(
                        name: "web",
                        algorithm: .weightedRoundRobin,
                        backends: [BackendSpec(name: "b1", address: b1), BackendSpec(name: "b2", address: b2)]
                    )
                    service.slowStart = SlowStart(window: .seconds(1), minimumShare: 0.1)
                    try await withProxy(service) { server, port in
                        let joined = ContinuousClock.now
                        try server.runtime.services[0].add(BackendSpec(name: "b3", address: b3))
                        let early = try await load(port, requests: 200)
                        let elapsed = (ContinuousClock.now - joined) / .seconds(1)
                        // Its weight is at most max(0.1, t / 1 s) of 1 while the batch runs, so its share
                        // is at most w / (2 + w); smooth WRR keeps within one request of a share.
                        let weight = min(1, max(0.1, elapsed))
                        let ceiling = Int((200 * weight / (2 + weight)).rounded(.up)) + 2
                        let early3 = early.backends["b3", default: 0]
                        #expect(early3 >= 3 && early3 <= ceiling, "b3 served \(early3) of 200 in \(elapsed) s; ceiling \(ceiling)")
                        try await Task.sleep(for: .milliseconds(1_100))
                        let late = try await load(port, requests: 300)
                        #expect(late.backends.values.allSatisfy { abs($0 - 100) <= 2 }, "full weight after the window: \(late.backends)")
                    }
                }
            }
        }
    }
}

/// The per-backend connection limit and its queue.
@Suite("Connection limits", .serialized)
struct ConnectionLimitTests {
    @Test("beyond max-connections requests wait in the queue; beyond the queue, or past its timeout, they get a 503", arguments: [false, true])
    func limits(queueTimesOut: Bool) async throws {
        try await withSyntheticBackend(name: "b1", { $0.settings.latency = .fixed(.milliseconds(300)) }) { b1 in
            var service = Service(name: "web", algorithm: .roundRobin, backends: [BackendSpec(name: "b1", address: b1)])
            service.limits = Service.Limits(maxConnections: 2, maxQueued: 2, queueTimeout: queueTimesOut ? .milliseconds(100) : .seconds(5))
            service.retries.maxRetries = 0
            let configuration = ProxyConfiguration.onLoopback([service], threads: 2)
            let server = try ProxyServer(configuration: configuration)
            let port = try await server.start()[0].port!
            var load = LoadConfiguration(target: .init(host: "127.0.0.1", port: port, path: "/"), clients: 6, pacing: .closedLoop(connections: 6))
            load.requests = 6
            load.timeout = .seconds(10)
            let statistics = try await LoadRun(configuration: load, sink: nil).run().statistics
            // Two at once; two wait for them (300 ms, within a 5 s queue timeout, not within 100 ms);
            // the other two find the queue full.
            #expect(statistics.statuses == (queueTimesOut ? [200: 2, 503: 4] : [200: 4, 503: 2]), "\(statistics.statuses)")
            #expect(server.runtime.services[0].backends[0].state.inFlight == 0)
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        }
    }
}

/// Stopping with requests in flight.
@Suite("Graceful shutdown", .serialized)
struct GracefulShutdownTests {
    @Test("shutdown stops accepting and lets every request in flight finish")
    func drains() async throws {
        try await withSyntheticBackend(name: "b1", { $0.settings.latency = .fixed(.milliseconds(400)) }) { b1 in
            let configuration = ProxyConfiguration.onLoopback([Service(name: "web", backends: [BackendSpec(name: "b1", address: b1)])], threads: 2)
            let server = try ProxyServer(configuration: configuration)
            let port = try await server.start()[0].port!
            var load = LoadConfiguration(target: .init(host: "127.0.0.1", port: port, path: "/"), clients: 20, pacing: .closedLoop(connections: 20))
            load.requests = 20
            load.timeout = .seconds(10)
            let run = Task { try await LoadRun(configuration: load, sink: nil).run().statistics }
            var waited = 0
            while server.requestsInFlight < 20 && waited < 200 {
                try await Task.sleep(for: .milliseconds(5))
                waited += 1
            }
            #expect(server.requestsInFlight == 20, "all twenty at the backend before the shutdown")
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
            let statistics = try await run.value
            #expect(statistics.statuses == [200: 20] && statistics.errors.isEmpty, "\(statistics.statuses) \(statistics.errors)")
        }
    }
}
