import Foundation
import LBConfig
import LBCore
import Testing

@Suite("config.yml")
struct ProxyConfigurationTests {
    /// The repository's root, found from this file's path.
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("the example config.yml reads as two services of three backends with every policy set")
    func exampleFile() throws {
        let path = Self.repositoryRoot.appendingPathComponent("config.yml").path
        let configuration = try ProxyConfiguration.load(path: path)
        #expect(configuration.listeners == [.init(address: HostPort(host: "127.0.0.1", port: 8080))])
        #expect(configuration.services.map(\.name) == ["api", "web"])
        let api = configuration.services[0]
        let web = configuration.services[1]
        #expect(api.route == Service.Route(hosts: ["api.lblab.test"], pathPrefix: "/"))
        #expect(web.route == nil, "web is the default service")
        #expect(api.algorithm == .leastConnections && web.algorithm == .consistentHash)
        #expect(api.backends.count == 3 && web.backends.count == 3)
        #expect(api.backends[2] == BackendSpec(name: "api-3", address: HostPort(host: "127.0.0.1", port: 9003), weight: 2))
        #expect(api.health == .init(probe: .http(path: "/health", expectStatus: 200), timing: HealthCheckConfiguration(interval: .seconds(2), timeout: .seconds(1), rise: 2, fall: 3)))
        #expect(web.health?.probe == .tcp && web.health?.timing.timeout == .milliseconds(500))
        #expect(api.retries.maxRetries == 2 && api.retries.retryOn == [.connectFailure, .reset, .badGateway, .serviceUnavailable, .gatewayTimeout])
        #expect(api.timeouts.responseHeader == .seconds(5) && web.timeouts.connect == .milliseconds(500))
        #expect(api.timeouts.tunnel == .seconds(1800) && web.timeouts.tunnel == .seconds(3600), "web has the default")
        #expect(api.outlierDetection?.maxEjectionTime == .seconds(300) && web.outlierDetection?.consecutiveFailures == 3)
        #expect(api.slowStart == SlowStart(window: .seconds(30), minimumShare: 0.1) && web.slowStart.window == .seconds(10))
        #expect(api.limits == .init(maxConnections: 1_000, maxQueued: 100, queueTimeout: .seconds(1)))
        #expect(web.hashKey == .header("X-LBLab-Key") && web.parameters.loadFactor == 0.25)
        #expect(configuration.trustedProxies.count == 2 && configuration.trustedProxies[0].contains("127.1.2.3"))
        #expect(configuration.yieldInterval == .milliseconds(1))
    }

    @Test("yield-interval: 1ms unless given, 0s turns it off, and it takes at most 1s")
    func yieldInterval() throws {
        #expect(try ProxyConfiguration.parse(Self.base, file: "c.yml").yieldInterval == .milliseconds(1))
        #expect(try ProxyConfiguration.parse("yield-interval: 500us\n" + Self.base, file: "c.yml").yieldInterval == .microseconds(500))
        #expect(try ProxyConfiguration.parse("yield-interval: 0s\n" + Self.base, file: "c.yml").yieldInterval == .zero)
        #expect(error("yield-interval: 2s\n" + Self.base) == "c.yml:1: yield-interval: must be at most 1s (0s: never)")
        #expect(error("yield-interval: 5\n" + Self.base) == "c.yml:1: yield-interval: \"5\" needs a unit, e.g. 5s or 5ms")
        #expect(error("yield-interval: -1ms\n" + Self.base) == "c.yml:1: yield-interval: must be at least 0s, got -1ms")
    }

    @Test("every algorithm name and alias is accepted", arguments: Algorithm.allCases)
    func algorithmNames(_ algorithm: Algorithm) throws {
        for name in [algorithm.name] + algorithm.aliases {
            let text = "listen: 127.0.0.1:8080\nservices:\n  - name: s\n    algorithm: \(name)\n    backends: [127.0.0.1:9001]\n"
            #expect(try ProxyConfiguration.parse(text, file: "c.yml").services[0].algorithm == algorithm, "\(name)")
        }
    }

    /// The error reading `text` gives, as a user sees it.
    func error(_ text: String) -> String {
        do {
            _ = try ProxyConfiguration.parse(text, file: "c.yml")
            return "no error"
        } catch {
            return error.description
        }
    }

    static let base = """
        listen: 127.0.0.1:8080
        services:
          - name: api
            backends:
              - { name: a1, address: 127.0.0.1:9001 }

        """

    @Test("bad input names the file, the line and the field, and says what was expected")
    func errors() {
        #expect(error(Self.base + "    intervall: 2s\n") == "c.yml:6: services[0].intervall: unknown key; expected one of: \(["name", "match", "algorithm", "parameters", "hash-key", "backends", "health", "retries", "timeouts", "outlier-detection", "slow-start", "limits", "pool"].joined(separator: ", "))")
        #expect(error(Self.base + "    timeouts:\n      connect: 20\n") == "c.yml:7: services[0].timeouts.connect: \"20\" needs a unit, e.g. 20s or 20ms")
        #expect(error(Self.base + "    timeouts:\n      tunnel: 0s\n").hasPrefix("c.yml:7: services[0].timeouts.tunnel: "))
        // A character the YAML reader refuses is reported on its line, in one line, by its code.
        #expect(error(Self.base + "    algorithm: least\u{7F}connections\n") == "c.yml:6: is not valid YAML: control characters are not allowed (U+007F)")
        #expect(error(Self.base + "    health:\n      interval: 1s\n      timeout: 2s\n") == "c.yml:8: services[0].health.timeout: must not exceed the interval (1s)")
        #expect(error(Self.base + "    health:\n      rise: many\n") == "c.yml:7: services[0].health.rise: \"many\" is not a whole number")
        #expect(error(Self.base + "    algorithm: fastest\n") .hasPrefix("c.yml:6: services[0].algorithm: \"fastest\" is not an algorithm; known: round-robin,"))
        #expect(error(Self.base + "    algorithm: maglev\n    parameters:\n      table-size: 1000\n") == "c.yml:8: services[0].parameters.table-size: must be a prime between 2 and 100000007 (e.g. 65537), got 1000")
        #expect(error(Self.base.replacingOccurrences(of: "127.0.0.1:9001", with: "9001")).hasPrefix("c.yml:5: services[0].backends[0].address: \"9001\""))
        #expect(error(Self.base + "    retries: 3\n") == "c.yml:6: services[0].retries: expected a mapping with keys attempts, on, non-idempotent, backoff, budget, found a single value")
        #expect(error(Self.base + "    retries:\n      on: [teapot]\n") == "c.yml:7: services[0].retries.on[0]: \"teapot\" is not one of: \(RetryCondition.allCases.map(\.rawValue).joined(separator: ", "))")
        #expect(error(Self.base + "  - name: api\n    backends: [127.0.0.1:9002]\n    match: { hosts: [x.test] }\n") == "c.yml:6: services[1].name: \"api\" is already the name of services[0]")
        #expect(error(Self.base + "  - name: b\n    backends: [127.0.0.1:9002]\n") == "c.yml:6: services[1]: services[0] is already the default service (no match:); give this one a match")
        #expect(error(Self.base + "      - { name: a1, address: 127.0.0.1:9002 }\n") == "c.yml:6: services[0].backends[1]: the name \"a1\" is already used by backends[0]")
        #expect(error("listen: 127.0.0.1:8080\nlisten: 127.0.0.1:8081\nservices: []\n").hasPrefix("c.yml:1: 'listen' appears twice in one mapping"))
        #expect(error("listen: 127.0.0.1:8080\nservices: [\n") .hasPrefix("c.yml:3: is not valid YAML"))
        #expect(error("listeners:\n  - { listen: 127.0.0.1:8081, protocol: tcp }\nservices: []\n") == "c.yml:2: listeners[0]: a tcp listener needs the service it forwards to (service: NAME)")
        #expect(error("listeners:\n  - { listen: 127.0.0.1:8081, protocol: tcp, service: db }\n" + Self.base.dropFirst("listen: 127.0.0.1:8080\n".count)) == "c.yml:2: listeners[0].service: no service is called \"db\"")
        #expect(error("listen: 127.0.0.1:9900\n" + Self.base.dropFirst("listen: 127.0.0.1:8080\n".count)) == "c.yml:1: listeners[0].listen: 127.0.0.1:9900 is already used by admin.listen")
        #expect(error(Self.base + "    backends: []\n").contains("appears twice"))
        #expect(error("listen: 127.0.0.1:8080\nservices:\n  - name: s\n    backends: []\n") == "c.yml:4: services[0].backends: a service needs at least one backend")
        #expect(error("listen: 127.0.0.1:8080\n") == "c.yml:1: services is required")
        #expect(error(Self.base.replacingOccurrences(of: "name: a1", with: "name: \"a 1\"")) == "c.yml:5: services[0].backends[0]: the name \"a 1\" must be visible ASCII without spaces (it is sent in X-LBLab-Backend)")
        #expect(error("trusted-proxies: [10.0.0.0/33]\n" + Self.base) == "c.yml:1: trusted-proxies[0]: \"10.0.0.0/33\" has a prefix length outside 0...32")
    }

    @Test("an admin API beyond loopback without a token is warned of; on loopback, or with a token, it is not")
    func adminExposure() {
        let exposed = ProxyConfiguration.Admin(address: HostPort(host: "0.0.0.0", port: 9900))
        #expect(exposed.exposureWarning(token: nil)?.hasPrefix("warning: the admin API listens on 0.0.0.0:9900 without a token") == true)
        #expect(exposed.exposureWarning(token: "")?.hasSuffix("set LBLAB_ADMIN_TOKEN") == true, "an empty token requires none")
        #expect(exposed.exposureWarning(token: "s3cret") == nil)
        for host in ["127.0.0.1", "127.8.9.10", "::1", "localhost"] {
            #expect(ProxyConfiguration.Admin(address: HostPort(host: host, port: 9900)).exposureWarning(token: nil) == nil, "\(host)")
        }
    }

    @Test("a least-resources service says where its figures come from and what it does without them; other services say nothing")
    func leastResourcesNotes() throws {
        let text = """
            admin: {listen: "127.0.0.1:9911"}
            services:
              - {name: cpu, algorithm: least-used-resources, parameters: {resource-max-age: 1500ms}, backends: ["127.0.0.1:9001"]}
              - {name: web, match: {hosts: [web.lblab.test]}, algorithm: LC, backends: ["127.0.0.1:9002"]}
            """
        let configuration = try ProxyConfiguration.parse(text, file: "c.yml")
        #expect(configuration.services[0].parameters.resourceMaxAge == .milliseconds(1500))
        #expect(configuration.resourceFigureNotes == [
            "service cpu: least-resources balances on resource figures sent to PUT /backends/NAME/usage on the admin API "
                + "(127.0.0.1:9911); a backend without a figure from the last 1.5s counts as fully used, so until figures arrive "
                + "it balances as least-connections"
        ])
        let refused = try #require(throws: ConfigError.self) {
            try ProxyConfiguration.parse(text.replacingOccurrences(of: "1500ms", with: "0s"), file: "c.yml")
        }
        #expect(refused.field == "services[0].parameters.resource-max-age" && refused.problem.contains("positive duration"), "\(refused)")
    }

    @Test("a file that cannot be read says so")
    func missingFile() {
        #expect(throws: ConfigError(file: "/nonexistent/c.yml", line: 0, field: "", problem: "cannot be read (no such file, or not allowed)")) {
            try ProxyConfiguration.load(path: "/nonexistent/c.yml")
        }
    }
}

@Suite("proxy flags")
struct ProxyFlagsTests {
    @Test("-listen, -backend, -algo and -t build one default service with a TCP scan")
    func quickFlags() {
        let backends = [HostPort(host: "127.0.0.1", port: 9001), HostPort(host: "127.0.0.1", port: 9002)]
        let configuration = ProxyConfiguration(
            listen: HostPort(host: "127.0.0.1", port: 8080),
            backends: backends,
            algorithm: Algorithm(name: "lc")!,
            healthInterval: .seconds(5)
        )
        #expect(configuration.problems().isEmpty)
        let service = configuration.services[0]
        #expect(service.route == nil && service.algorithm == .leastConnections)
        #expect(service.backends.map(\.name) == ["127.0.0.1:9001", "127.0.0.1:9002"])
        #expect(service.health == .init(probe: .tcp, timing: HealthCheckConfiguration(interval: .seconds(5), timeout: .seconds(1), rise: 1, fall: 1)))
    }

    @Test("the same backend twice is a problem flags can have too")
    func duplicateBackend() {
        let backend = HostPort(host: "127.0.0.1", port: 9001)
        let configuration = ProxyConfiguration(listen: HostPort(host: "127.0.0.1", port: 8080), backends: [backend, backend])
        #expect(configuration.problems().map(\.description) == [
            "services[0].backends[1]: the name \"127.0.0.1:9001\" is already used by backends[0]",
            "services[0].backends[1]: 127.0.0.1:9001 is already backends[0]",
        ])
    }
}
