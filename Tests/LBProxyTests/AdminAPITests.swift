import Foundation
import LBConfig
import LBCore
import LBLoad
import LBTesting
import NIOEmbedded
import Testing

@testable import LBProxy

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The admin API: its answers (called directly), and its changes taking effect on a running proxy.
@Suite("Admin API", .serialized)
struct AdminAPITests {
    func runtime(_ backends: [String] = ["b1", "b2"], health: Bool = false) -> ProxyRuntime {
        var service = Service(
            name: "web",
            algorithm: .weightedRoundRobin,
            backends: backends.enumerated().map { BackendSpec(name: $1, address: HostPort(host: "127.0.0.1", port: 9001 + $0)) }
        )
        if health { service.health = Service.HealthCheck(probe: .tcp, timing: HealthCheckConfiguration()) }
        return ProxyRuntime(configuration: ProxyConfiguration(listen: HostPort(host: "127.0.0.1", port: 0), services: [service]))
    }

    func call(
        _ api: AdminAPI,
        _ method: String,
        _ target: String,
        _ body: String? = nil,
        token: String? = nil
    ) async -> (Int, [String: Any]) {
        let response = await api.handle(
            AdminAPI.Request(method: method, target: target, authorization: token.map { "Bearer \($0)" }, body: Array((body ?? "").utf8))
        )
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return (response.status, object)
    }

    private func names(_ object: [String: Any]) -> [String] {
        let services = object["services"] as? [[String: Any]] ?? []
        return services.flatMap { ($0["backends"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } }
    }

    @Test("the token is compared byte for byte over its whole length")
    func tokenComparison() {
        #expect(AdminAPI.sameBytes("Bearer s3cret", "Bearer s3cret"))
        for given in ["", "Bearer", "Bearer s3cre", "Bearer s3cret ", "Bearer s3creT", "bearer s3cret", "Bearer s3cret\u{0}"] {
            #expect(!AdminAPI.sameBytes(given, "Bearer s3cret"), "\(String(reflecting: given))")
        }
    }

    @Test("a query of empty names and values is read, not trapped on, before the token is asked for")
    func emptyQueryParts() async {
        let api = AdminAPI(runtime: self.runtime(), token: "secret") { _ in true }
        for target in ["/backends?=", "/backends/b1/drain?&=&service", "/health?="] {
            let (status, _) = await call(api, target.hasPrefix("/health") ? "GET" : "POST", target)
            #expect(status == (target.hasPrefix("/health") ? 200 : 401), "\(target)")
        }
        let (status, _) = await call(api, "POST", "/backends/b1/drain?=&service=web", token: "secret")
        #expect(status == 200)
    }

    @Test("GET /backends lists each backend's state; add, drain, reweight and remove change it")
    func backends() async {
        let runtime = self.runtime()
        let api = AdminAPI(runtime: runtime, token: nil) { _ in true }
        var (status, object) = await call(api, "GET", "/backends")
        #expect(status == 200 && names(object) == ["b1", "b2"])
        let first = ((object["services"] as? [[String: Any]])?.first?["backends"] as? [[String: Any]])?.first
        #expect(first?["state"] as? String == "up" && first?["weight"] as? Int == 1 && first?["inFlight"] as? Int == 0)

        (status, _) = await call(api, "POST", "/backends", #"{"name": "b3", "address": "127.0.0.1:9010", "weight": 3}"#)
        #expect(status == 201 && runtime.services[0].backends.map(\.spec.name) == ["b1", "b2", "b3"])
        (status, object) = await call(api, "POST", "/backends", #"{"name": "b4", "address": "127.0.0.1:9010"}"#)
        #expect(status == 409 && (object["error"] as? String)?.contains("already has a backend at 127.0.0.1:9010") == true)

        (status, object) = await call(api, "POST", "/backends/b1/drain")
        #expect(status == 200 && runtime.services[0].backend(named: "b1")?.state.isDraining == true)
        #expect((object["backend"] as? [String: Any])?["state"] as? String == "draining")
        (status, _) = await call(api, "POST", "/backends/b1/resume")
        #expect(status == 200 && runtime.services[0].backend(named: "b1")?.state.isDraining == false)

        let version = runtime.services[0].version
        (status, _) = await call(api, "PUT", "/backends/b2/weight", #"{"weight": 5}"#)
        #expect(status == 200 && runtime.services[0].backend(named: "b2")?.spec.weight == 5 && runtime.services[0].version > version)
        (status, object) = await call(api, "PUT", "/backends/b2/weight", #"{"weight": 0}"#)
        #expect(status == 400 && (object["error"] as? String)?.contains("out of range") == true)
        (status, _) = await call(api, "PUT", "/backends/b2/weight", #"{"weight": true}"#)
        #expect(status == 400)

        (status, _) = await call(api, "DELETE", "/backends/b3")
        #expect(status == 200 && runtime.services[0].backends.map(\.spec.name) == ["b1", "b2"])
        (status, _) = await call(api, "DELETE", "/backends/b3")
        #expect(status == 404)
        (status, _) = await call(api, "GET", "/nowhere")
        #expect(status == 404)
        (status, _) = await call(api, "PATCH", "/backends")
        #expect(status == 405)
    }

    @Test("a backend added to a service with health checks starts down")
    func addedBackendWaitsForHealth() async {
        let runtime = self.runtime(health: true)
        let api = AdminAPI(runtime: runtime, token: nil) { _ in true }
        let (status, object) = await call(api, "POST", "/backends", #"{"address": "127.0.0.1:9010"}"#)
        #expect(status == 201 && (object["backend"] as? [String: Any])?["state"] as? String == "down")
        #expect(runtime.services[0].backend(named: "127.0.0.1:9010")?.state.isAvailable == false)
    }

    @Test("with a token, every call but GET /health needs it")
    func token() async {
        let api = AdminAPI(runtime: self.runtime(), token: "s3cret") { _ in true }
        #expect(await call(api, "GET", "/health").0 == 200)
        #expect(await call(api, "GET", "/backends").0 == 401)
        #expect(await call(api, "GET", "/backends", token: "wrong").0 == 401)
        #expect(await call(api, "GET", "/backends", token: "s3cret").0 == 200)
        #expect(await call(api, "POST", "/register", #"{"address": "http://127.0.0.1:1080"}"#).0 == 401)
    }

    @Test("POST /register answers in JSend: success, 400 for a missing or malformed body or a dead address, 403 for an unknown field")
    func register() async {
        let runtime = self.runtime([])
        let api = AdminAPI(runtime: runtime, token: nil) { $0.port != 1081 }
        var (status, object) = await call(api, "POST", "/register", #"{"address": "http://127.0.0.1:1080", "weight": 5}"#)
        #expect(status == 200 && object["status"] as? String == "success")
        let data = object["data"] as? [String: Any]
        #expect(data?["server"] as? String == "http://127.0.0.1:1080" && data?["weight"] as? Int == 5)
        #expect(runtime.services[0].backends.map(\.spec.address) == [HostPort(host: "127.0.0.1", port: 1080)])
        #expect(runtime.services[0].backends.first?.spec.weight == 5)

        (status, _) = await call(api, "POST", "/register", #"{"address": "http://127.0.0.1:1080", "weight": 2}"#)
        #expect(status == 200 && runtime.services[0].backends.count == 1 && runtime.services[0].backends.first?.spec.weight == 2)

        (status, object) = await call(api, "POST", "/register", #"{"address": "http://127.0.0.1:1081", "weight": 1}"#)
        #expect(status == 400 && object["status"] as? String == "fail")
        #expect((object["data"] as? [String: Any])?["title"] as? String == "http://127.0.0.1:1081 not alive, registration failed.")

        (status, object) = await call(api, "POST", "/register", #"{"address": "http://127.0.0.1:1082", "weight": 1, "name": "x"}"#)
        #expect(status == 403 && object["status"] as? String == "fail")
        #expect(((object["data"] as? [String: Any])?["title"] as? String)?.contains("unknown field \"name\"") == true)
        #expect(await call(api, "POST", "/register").0 == 400)
        #expect(await call(api, "POST", "/register", "{not json").0 == 400)
        #expect(await call(api, "POST", "/register", #"{"weight": 1}"#).0 == 400)
        #expect(await call(api, "POST", "/register", #"{"address": "http://127.0.0.1:1083", "weight": 1.5}"#).0 == 400)
        #expect(runtime.services[0].backends.count == 1)
    }

    @Test("a reload applies backend changes, the tunables and a new service, and changes nothing more when the file is read again")
    func reload() async throws {
        let b1 = BackendSpec(name: "b1", address: HostPort(host: "127.0.0.1", port: 9001))
        let b2 = BackendSpec(name: "b2", address: HostPort(host: "127.0.0.1", port: 9002))
        let configuration = ProxyConfiguration.onLoopback([Service(name: "web", algorithm: .roundRobin, backends: [b1, b2])], threads: 1)
        let server = try ProxyServer(configuration: configuration)
        var changed = configuration
        var reweighted = b1
        reweighted.weight = 4
        let moved = BackendSpec(name: "b2", address: HostPort(host: "127.0.0.1", port: 9012))
        changed.services[0].backends = [reweighted, moved, BackendSpec(name: "b3", address: HostPort(host: "127.0.0.1", port: 9003))]
        changed.services[0].algorithm = .leastConnections
        changed.services[0].timeouts.clientIdle = .seconds(5)
        changed.services[0].pool.maxIdle = 3
        changed.services[0].limits.maxConnections = 7
        changed.services.append(Service(name: "other", backends: [b1]))
        changed.services[1].route = Service.Route(hosts: ["other.test"])
        changed.services[1].timeouts.clientIdle = .seconds(4)
        server.runtime.services[0].backend(named: "b1")!.state.setDraining(true)
        let outcome = await server.reload(changed)
        #expect(
            outcome.applied == [
                "web: removed b2", "web: b1 weight 4", "web: added b2", "web: added b3", "web: algorithm least-connections",
                "web: timeouts", "web: limits", "web: pool", "added service other",
            ]
        )
        #expect(outcome.needsRestart.isEmpty, "\(outcome.needsRestart)")
        #expect(server.runtime.services.map(\.settings.name) == ["web", "other"])
        let backends = server.runtime.services[0].backends
        #expect(backends.map(\.spec) == [reweighted, moved, changed.services[0].backends[2]])
        #expect(backends.map(\.limiter.limits.maxConnections) == [7, 7, 7], "kept and added backends alike")
        #expect(backends[0].state.isDraining, "a drained backend the file keeps stays drained")
        #expect(server.runtime.services[0].tunables.algorithm == .leastConnections)
        #expect(server.runtime.clientIdleNanos == 5_000_000_000, "the longest of the services'")
        #expect(await server.reload(changed).applied.isEmpty, "a second reload of the same file changes nothing")
        await server.shutdown(grace: .zero)
    }

    @Test("a reload opens the access log again: after a rotation the lines go to a new file; a path that cannot be opened keeps the old")
    func reloadAccessLog() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-log-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/access.log"
        var configuration = ProxyConfiguration.onLoopback([Service(name: "web", backends: [])], threads: 1)
        configuration.accessLog = path
        let recorder = try ProxyRecorder(sink: nil, accessLogPath: path)
        let server = try ProxyServer(configuration: configuration, recorder: recorder)
        let log = try #require(recorder.accessLog)
        func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "(none)" }

        log.write(Array("one\n".utf8))
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        #expect(await server.reload(configuration).applied == ["access-log reopened"])
        log.write(Array("two\n".utf8))
        #expect(text(path + ".1") == "one\n" && text(path) == "two\n")

        var elsewhere = configuration
        elsewhere.accessLog = directory + "/missing/access.log"
        let failed = await server.reload(elsewhere)
        #expect(failed.applied.isEmpty && failed.failed.count == 1 && failed.failed[0].hasSuffix("the access log goes on to \(path)"), "\(failed)")
        log.write(Array("three\n".utf8))
        #expect(text(path) == "two\nthree\n")
        #expect(server.runtime.configuration.accessLog == path, "the log written to, not the one that failed")

        var off = configuration
        off.accessLog = nil
        #expect(await server.reload(off).needsRestart == ["access-log"])
    }

    @Test("a reload retires services, and a loop takes up new trusted proxies, routes and yield interval with its next request")
    func reloadRetiresAndTrusts() async throws {
        let b1 = BackendSpec(name: "b1", address: HostPort(host: "127.0.0.1", port: 9001))
        var routed = Service(name: "api", backends: [b1])
        routed.route = Service.Route(hosts: ["api.test"])
        var db = Service(name: "db", backends: [b1])
        db.route = Service.Route(hosts: ["db.test"])
        var configuration = ProxyConfiguration.onLoopback([Service(name: "web", backends: [b1]), routed, db], threads: 1)
        configuration.listeners.append(.init(address: HostPort(host: "127.0.0.1", port: 0), mode: .tcp, service: "db"))
        #expect(configuration.problems().isEmpty)
        let server = try ProxyServer(configuration: configuration)
        let loop = try LoopContext(eventLoop: EmbeddedEventLoop(), runtime: server.runtime, index: 0)
        #expect(loop.router.route(host: "api.test", path: "/") == 1)
        #expect(!loop.forwarded.isTrusted("192.0.2.7"))
        #expect(loop.coreYield.intervalNanos == 1_000_000)

        var changed = configuration
        changed.listeners.removeLast()
        changed.services.removeLast()
        changed.services.remove(at: 1)
        changed.trustedProxies.append(try AddressRange(parsing: "192.0.2.0/24"))
        changed.yieldInterval = .microseconds(250)
        let outcome = await server.reload(changed)
        #expect(outcome.applied == ["removed service api", "removed service db", "trusted-proxies", "yield-interval"])
        #expect(outcome.needsRestart.isEmpty && outcome.failed.isEmpty, "\(outcome)")
        #expect(server.runtime.services.map(\.settings.name) == ["web"])
        #expect(server.runtime.configuration.listeners == changed.listeners, "what the start will bind")
        // The loop goes by its old table until it looks again, as it does with each request.
        #expect(loop.router.route(host: "api.test", path: "/") == 1)
        loop.refreshIfReloaded()
        #expect(loop.router.route(host: "api.test", path: "/") == 0, "the default service now")
        #expect(loop.forwarded.isTrusted("192.0.2.7"))
        #expect(loop.coreYield.intervalNanos == 250_000)
        #expect(!loop.services[0].isRetired && loop.services[1].isRetired && loop.services[2].isRetired)
        #expect(await server.reload(changed).applied.isEmpty)
    }

    @Test("a reload turns outlier detection off (the ejected come back) and on again, and a loop takes up a new retry budget")
    func reloadPassive() async throws {
        let specs = (1...3).map { BackendSpec(name: "b\($0)", address: HostPort(host: "127.0.0.1", port: 9000 + $0)) }
        var service = Service(name: "web", backends: specs)
        service.outlierDetection = OutlierDetectionConfiguration(consecutiveFailures: 1, baseEjectionTime: .seconds(30), maxEjectedShare: 0.5)
        let configuration = ProxyConfiguration.onLoopback([service], threads: 1)
        let server = try ProxyServer(configuration: configuration)
        let runtime = server.runtime.services[0]
        let eventLoop = EmbeddedEventLoop()
        let loop = try LoopContext(eventLoop: eventLoop, runtime: server.runtime, index: 0)
        let b1 = runtime.backends[0]
        runtime.outlierFailed(b1, eventLoop: eventLoop)
        #expect(b1.state.isEjected)

        var off = configuration
        off.services[0].outlierDetection = nil
        off.services[0].retryBudget = Service.RetryBudgetSettings(share: 0.5, minimumConcurrency: 1)
        let outcome = await server.reload(off)
        #expect(outcome.applied == ["web: retry budget", "web: outlier detection off"] && outcome.needsRestart.isEmpty, "\(outcome)")
        #expect(!b1.state.isEjected, "turned off, detection lets go of the backend it had ejected")
        runtime.outlierFailed(runtime.backends[1], eventLoop: eventLoop)
        #expect(!runtime.backends[1].state.isEjected, "and ejects no more")
        #expect(loop.services[0].retryBudget.share == 0.2)
        loop.services[0].refreshIfChanged()
        #expect(loop.services[0].retryBudget.share == 0.5 && loop.services[0].retryBudget.minimumConcurrency == 1)

        var on = off
        on.services[0].outlierDetection = OutlierDetectionConfiguration(consecutiveFailures: 2, baseEjectionTime: .seconds(30), maxEjectedShare: 0.5)
        #expect(await server.reload(on).applied == ["web: outlier detection"])
        let b3 = runtime.backends[2]
        runtime.outlierFailed(b3, eventLoop: eventLoop)
        #expect(!b3.state.isEjected, "the new threshold is two failures")
        runtime.outlierFailed(b3, eventLoop: eventLoop)
        #expect(b3.state.isEjected)
        try await eventLoop.shutdownGracefully()
    }

    @Test("a loop takes up retuned pool and slow-start settings: its pools keep fewer idle connections at once")
    func retunedLoop() throws {
        let b1 = BackendSpec(name: "b1", address: HostPort(host: "127.0.0.1", port: 9001))
        let runtime = ProxyRuntime(configuration: ProxyConfiguration.onLoopback([Service(name: "web", backends: [b1])], threads: 1))
        let loop = try LoopContext(eventLoop: EmbeddedEventLoop(), runtime: runtime, index: 0)
        #expect(loop.services[0].backends[0].pool.settings.maxIdle == 64)
        var tunables = runtime.services[0].tunables
        tunables.pool.maxIdle = 0
        tunables.slowStart = SlowStart(window: .seconds(30))
        #expect(runtime.services[0].retune(tunables) == ["slow-start", "pool"])
        loop.services[0].refreshIfChanged()
        #expect(loop.services[0].backends[0].pool.settings.maxIdle == 0)
        #expect(loop.services[0].tunables.slowStart.window == .seconds(30))
    }

    // MARK: On a running proxy

    func admin(_ address: HostPort, _ method: String, _ path: String, _ body: String? = nil) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(address.port)\(path)")!)
        request.httpMethod = method
        request.httpBody = body.map { Data($0.utf8) }
        request.timeoutInterval = 10
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    func load(_ proxy: HostPort, requests: Int) async throws -> [String: Int] {
        var configuration = LoadConfiguration(
            target: .init(host: proxy.host, port: proxy.port, path: "/"),
            clients: 4,
            pacing: .closedLoop(connections: 4)
        )
        configuration.requests = requests
        configuration.timeout = .seconds(10)
        let statistics = try await LoadRun(configuration: configuration, sink: nil).run().statistics
        #expect(statistics.errors.isEmpty && statistics.statuses == [200: requests], "\(statistics.statuses) \(statistics.errors)")
        return statistics.backends
    }

    @Test("on a running proxy: an added backend takes requests at once, a drained or removed one none, a weight moves shares; /metrics counts them")
    func changesTakeEffect() async throws {
        try await withSyntheticBackend(name: "b1") { b1 in
            try await withSyntheticBackend(name: "b2") { b2 in
                try await withSyntheticBackend(name: "b3") { b3 in
                    let service = Service(
                        name: "web",
                        algorithm: .weightedRoundRobin,
                        backends: [BackendSpec(name: "b1", address: b1), BackendSpec(name: "b2", address: b2)]
                    )
                    let configuration = ProxyConfiguration.onLoopback([service], threads: 2)
                    let server = try ProxyServer(configuration: configuration)
                    let proxy = HostPort(host: "127.0.0.1", port: try await server.start()[0].port!)
                    let adminAddress = HostPort(host: "127.0.0.1", port: server.adminAddress!.port!)

                    var total: [String: Int] = [:]
                    var served = try await load(proxy, requests: 200)
                    total.merge(served, uniquingKeysWith: +)
                    // Each of the two loops alternates: within one request per loop of an even split.
                    #expect(served.keys.sorted() == ["b1", "b2"] && served.values.allSatisfy { abs($0 - 100) <= 2 }, "\(served)")

                    #expect(try await admin(adminAddress, "POST", "/backends", #"{"name": "b3", "address": "\#(b3)"}"#).0 == 201)
                    served = try await load(proxy, requests: 300)
                    total.merge(served, uniquingKeysWith: +)
                    #expect(served.keys.sorted() == ["b1", "b2", "b3"] && served.values.allSatisfy { abs($0 - 100) <= 2 }, "\(served)")

                    #expect(try await admin(adminAddress, "PUT", "/backends/b3/weight", #"{"weight": 2}"#).0 == 200)
                    served = try await load(proxy, requests: 400)
                    total.merge(served, uniquingKeysWith: +)
                    // Each loop's smooth WRR cycle is 1, 1, 2: within one cycle per loop of the exact shares.
                    #expect(abs(served["b3", default: 0] - 200) <= 4 && abs(served["b1", default: 0] - 100) <= 4, "\(served)")

                    #expect(try await admin(adminAddress, "POST", "/backends/b1/drain").0 == 200)
                    served = try await load(proxy, requests: 150)
                    total.merge(served, uniquingKeysWith: +)
                    #expect(served["b1"] == nil, "\(served)")

                    #expect(try await admin(adminAddress, "DELETE", "/backends/b3").0 == 200)
                    served = try await load(proxy, requests: 100)
                    total.merge(served, uniquingKeysWith: +)
                    #expect(served == ["b2": 100], "\(served)")

                    let (status, metrics) = try await admin(adminAddress, "GET", "/metrics")
                    #expect(status == 200)
                    for name in ["b1", "b2"] {
                        let line = #"lblab_backend_responses_total{service="web",backend="\#(name)",code="2xx"} \#(total[name, default: 0])"#
                        #expect(metrics.contains(line + "\n"), "\(line) in \(metrics)")
                    }
                    #expect(metrics.contains(#"lblab_backend_draining{service="web",backend="b1"} 1"#), "\(metrics)")
                    #expect(!metrics.contains(#"backend="b3""#), "a removed backend's metrics go with it")
                    #expect(await server.shutdown(grace: .seconds(5)) == 0)
                }
            }
        }
    }

    @Test("admin changes while requests flow: drains, weights, removals and re-adds of two of three backends cost no request, and every place comes back")
    func changesUnderLoad() async throws {
        try await withBackends(["b1", "b2", "b3"], { $0.settings.latency = .fixed(.milliseconds(2)) }) { specs in
            let service = Service(name: "web", algorithm: .leastConnections, backends: specs)
            let server = try ProxyServer(configuration: .onLoopback([service], threads: 2))
            let proxy = HostPort(host: "127.0.0.1", port: try await server.start()[0].port!)
            let api = AdminAPI(runtime: server.runtime, token: nil) { _ in true }
            let churn = Task {
                // b1 stays: some backend can always take a request.
                var generator = SeededGenerator(seed: 11)
                var removed: Set<String> = []
                for _ in 0..<150 {
                    let spec = specs[1 + generator.index(below: 2)]
                    let name = spec.name
                    let call: AdminAPI.Request
                    if removed.contains(name) {
                        call = AdminAPI.Request(method: "POST", target: "/backends", body: Array(#"{"name": "\#(name)", "address": "\#(spec.address)"}"#.utf8))
                        removed.remove(name)
                    } else {
                        switch generator.index(below: 4) {
                        case 0: call = AdminAPI.Request(method: "POST", target: "/backends/\(name)/drain")
                        case 1: call = AdminAPI.Request(method: "POST", target: "/backends/\(name)/resume")
                        case 2: call = AdminAPI.Request(method: "PUT", target: "/backends/\(name)/weight", body: Array(#"{"weight": \#(1 + generator.index(below: 5))}"#.utf8))
                        default:
                            call = AdminAPI.Request(method: "DELETE", target: "/backends/\(name)")
                            removed.insert(name)
                        }
                    }
                    let response = await api.handle(call)
                    #expect((200..<300).contains(response.status), "\(call.method) \(call.target): \(String(decoding: response.body, as: UTF8.self))")
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
            let statistics = try await closedLoad(proxy, requests: 3_000, connections: 8)
            await churn.value
            #expect(statistics.errors.isEmpty && statistics.statuses == [200: 3_000], "\(statistics.statuses) \(statistics.errors)")
            #expect(server.requestsInFlight == 0, "every place given back")
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
        }
    }
}
