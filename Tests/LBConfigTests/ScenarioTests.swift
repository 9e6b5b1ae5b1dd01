import Foundation
import LBConfig
import LBCore
import Testing

@Suite("scenario files")
struct ScenarioTests {
    static let full = """
        name: trial
        question: does it work?
        seed: 7
        duration: 30s
        warmup: 5s
        repeats: 2
        algorithms:
          - round-robin
          - LC
          - {label: chwbl-unbounded, algorithm: consistent-hash, parameters: {load-factor: none}}
        backends:
          - {name: fast, latency: 2ms, limits: {cpu: 0.5, memory: 128MiB}}
          - {latency: "lognormal(5ms,40ms)", weight: 3, capacity: 4, queue: 10, cpu: 1ms}
          - {name: spare, in-service: false}
        load:
          clients: 10
          total-rate: 500
          arrival: constant
          keys: {count: 1000, zipf: 1.1}
        timeline:
          - {at: 10s, kill: fast}
          - {at: 15s, restart: fast}
          - {at: 16s, slow: {backend: b2, latency: 50ms}}
          - {at: 20s, add: spare}
          - {at: 21s, weight: {backend: spare, weight: 2}}
          - {at: 22s, health: {backend: b2, healthy: false}}
        proxy:
          threads: 2
          hash-key: header:X-LBLab-Key
          health: {type: tcp, interval: 1s, rise: 1, fall: 1}
        expect:
          - p99(LC) < 0.5 * p99(round-robin)
          - errors(chwbl-unbounded) == 0
        """

    @Test("a full scenario reads into its parts")
    func fullScenario() throws {
        let scenario = try Scenario.parse(Self.full, file: "scenarios/trial.yml")
        #expect(scenario.name == "trial" && scenario.seed == 7 && scenario.repeats == 2)
        #expect(scenario.duration == .seconds(30) && scenario.warmup == .seconds(5))
        #expect(scenario.labels == ["round-robin", "least-connections", "chwbl-unbounded"])
        #expect(scenario.algorithms[2].algorithm == .consistentHash && scenario.algorithms[2].parametersYAML?.contains("load-factor") == true)
        #expect(scenario.backends.map(\.name) == ["fast", "b2", "spare"])
        #expect(scenario.backends[0].cpuLimit == 0.5 && scenario.backends[0].memoryLimit == 128 << 20)
        #expect(scenario.backends[1].latency == .lognormal(median: .milliseconds(5), p99: .milliseconds(40)))
        #expect(scenario.backends[1].capacity == 4 && scenario.backends[1].queue == 10 && scenario.backends[1].weight == 3)
        #expect(!scenario.backends[2].inService)
        #expect(scenario.load.totalRate == 500 && scenario.load.ratePerClient == 50 && scenario.load.arrival == .constant)
        #expect(scenario.load.keyCount == 1000 && scenario.load.zipf == 1.1)
        #expect(scenario.timeline.map(\.action) == [
            .kill("fast"), .restart("fast"), .slow("b2", .fixed(.milliseconds(50))), .add("spare"), .weight("spare", 2),
            .health("b2", false),
        ])
        #expect(scenario.timeline[0].at == .seconds(10) && scenario.timeline[0].line == 21)
        #expect(scenario.proxy.threads == 2)
        #expect(scenario.expectations.count == 2 && scenario.expectations[0].line == 32)
    }

    @Test("the proxy configuration made for an algorithm is a valid config.yml with the scenario's settings")
    func proxyConfiguration() throws {
        let scenario = try Scenario.parse(Self.full, file: "scenarios/trial.yml")
        let addresses = ["fast": HostPort(host: "127.0.0.1", port: 9101), "b2": HostPort(host: "127.0.0.1", port: 9102)]
        let text = scenario.proxyConfigurationYAML(
            for: scenario.algorithms[2],
            runSeed: 8,
            listen: HostPort(host: "127.0.0.1", port: 8181),
            admin: HostPort(host: "127.0.0.1", port: 9191),
            backendAddresses: addresses
        )
        let configuration = try ProxyConfiguration.parse(text, file: "generated")
        let service = configuration.services[0]
        #expect(configuration.listeners[0].address.port == 8181 && configuration.admin.address.port == 9191)
        #expect(configuration.threads == 2)
        #expect(service.algorithm == .consistentHash && service.parameters.loadFactor == nil)
        #expect(service.parameters.seed == Scenario.pickerSeed(runSeed: 8), "the run's picker seed, beside the scenario's parameters")
        #expect(service.backends.map(\.name) == ["fast", "b2"], "the spare joins later")
        #expect(service.backends[1].weight == 3 && service.backends[1].address.port == 9102)
        #expect(service.hashKey == .header("X-LBLab-Key") && service.health?.probe == .tcp)
        #expect(configuration.trustedProxies.contains { $0.contains("203.0.113.1") } == false)
        #expect(configuration.trustedProxies.contains { $0.contains("127.0.0.1") })
    }

    @Test("each run's picker seed derives from the run's seed: the same seed the same, another seed another")
    func pickerSeedFollowsTheRun() throws {
        let scenario = try Scenario.parse(Self.full, file: "scenarios/trial.yml")
        let addresses = ["fast": HostPort(host: "127.0.0.1", port: 9101), "b2": HostPort(host: "127.0.0.1", port: 9102)]
        func seed(_ entry: Int, run: UInt64) throws -> UInt64 {
            let text = scenario.proxyConfigurationYAML(
                for: scenario.algorithms[entry], runSeed: run, listen: HostPort(host: "127.0.0.1", port: 8181),
                admin: HostPort(host: "127.0.0.1", port: 9191), backendAddresses: addresses
            )
            return try ProxyConfiguration.parse(text, file: "generated").services[0].parameters.seed
        }
        // Repeats 0 and 1 of seed 7, as lbctl run numbers them (ScenarioRun.seed).
        #expect(try seed(0, run: 7) == Scenario.pickerSeed(runSeed: 7) && seed(0, run: 8) == Scenario.pickerSeed(runSeed: 8))
        #expect(try seed(0, run: 7) != seed(0, run: 8))
        #expect(try seed(0, run: 7) == seed(1, run: 7) && seed(2, run: 7) == seed(0, run: 7))
        // Not the run seed itself, whose streams the load generator's clients draw their gaps from.
        #expect(try seed(0, run: 7) != 7)
        // The largest run seed still makes a configuration the proxy reads.
        #expect(try seed(0, run: .max) <= UInt64(Int.max))
    }

    @Test("a scenario's algorithm parameters may not fix the picker seed")
    func fixedPickerSeedRefused() throws {
        let text = Self.full.replacingOccurrences(of: "parameters: {load-factor: none}", with: "parameters: {load-factor: none, seed: 5}")
        let error = try #require(throws: ConfigError.self) { try Scenario.parse(text, file: "scenarios/trial.yml") }
        #expect(error.line == 10 && error.field == "algorithms[2].parameters.seed", "\(error)")
        #expect(error.problem.contains("derives from the scenario's seed and the repeat"), "\(error)")
    }

    @Test(
        "mistakes name file, line and field",
        arguments: [
            ("duration: 10\n", 1, "duration", "needs a unit"),
            ("algorithms: [round-robin, fastest]\n", 1, "algorithms[1]", "not an algorithm"),
            ("backends: {count: 2, latency: 5}\n", 1, "backends.latency", "5"),
            ("backends: {count: 2, limits: {memory: lots}}\n", 1, "backends.limits.memory", "not a size"),
            ("backends: {count: 2, limits: {memory: 99999999999999GiB}}\n", 1, "backends.limits.memory", "too large"),
            ("backends:\n  - {name: a, capacity: 4, queue: 2}\n  - {name: b, queue: 2}\n", 3, "backends[1].queue", "give capacity"),
            ("load: {clients: 5}\n", 1, "load", "rate"),
            ("load: {clients: 131833, rate: 1}\n", 1, "load.clients", "between 1 and 131832 (one synthetic address each)"),
            ("timeline:\n  - {at: 2s, kill: b9}\n", 2, "timeline[0]", "no backend named \"b9\""),
            ("timeline:\n  - {at: 2s, restart: b1}\n", 2, "timeline[0]", "restart follows kill"),
            ("timeline:\n  - {at: 20s, kill: b1}\n", 2, "timeline[0]", "not within the duration"),
            ("timeline:\n  - {at: 2s, kill: b1, stop: b2}\n", 2, "timeline[0]", "one action per step"),
            ("proxy:\n  health:\n    intervall: 1s\n", 3, "proxy.health.intervall", "unknown key"),
            ("expect:\n  - p99(round-robin) < p99(maglev)\n", 2, "expect[0]", "not an algorithm of this scenario"),
            ("expect:\n  - p98(round-robin) < 3\n", 2, "expect[0]", "not a metric"),
            ("expect:\n  - p99(round-robin) 3\n", 2, "expect[0]", "expected a comparison"),
            ("warmup: 10s\n", 1, "warmup", "shorter than the duration"),
            ("load: {clients: 5, rate: 1, websocket: yes please}\n", 1, "load.websocket", "true or false"),
            ("load: {clients: 5, rate: 1, keys: {count: 10}, websocket: true}\n", 1, "load.keys", "messages have no headers"),
            ("load: {clients: 5, rate: 1, method: post, websocket: true}\n", 1, "load.method", "opens with GET"),
        ]
    )
    func mistakes(_ line: String, _ lineNumber: Int, _ field: String, _ problem: String) {
        // A valid base, with one key replaced by the case's own.
        var base: [String: String] = [
            "duration": "duration: 10s\n",
            "algorithms": "algorithms: [round-robin]\n",
            "backends": "backends: {count: 2}\n",
            "load": "load: {clients: 5, rate: 10}\n",
        ]
        let key = String(line.prefix { $0 != ":" })
        base[key] = nil
        let text = line + base.keys.sorted().map { base[$0]! }.joined()
        do {
            _ = try Scenario.parse(text, file: "s.yml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.file == "s.yml")
            #expect(error.line == lineNumber, "\(error)")
            #expect(error.field == field, "\(error)")
            #expect(error.problem.contains(problem), "\(error)")
        }
    }

    @Test("expectations: precedence, evaluation, verdicts")
    func expectations() throws {
        let labels = ["round-robin", "peak-ewma"]
        let expectation = try ExpectedOutcome.parse("p99(peak-ewma) + 1 < 0.5 * p99(round-robin) - 2", labels: labels)
        let values: [String: Double] = ["p99/peak-ewma": 10, "p99/round-robin": 30]
        let lookup = { (metric: ExpectedOutcome.Metric, label: String) in values["\(metric.rawValue)/\(label)"] }
        #expect(expectation.lhs.evaluate(lookup) == 11)
        #expect(expectation.rhs.evaluate(lookup) == 13, "* binds tighter than -")
        #expect(expectation.holds(lookup) == true)
        #expect(try ExpectedOutcome.parse("p99(peak-ewma) >= (1 + 2) * 4", labels: labels).holds(lookup) == false)
        #expect(try ExpectedOutcome.parse("errors(round-robin) == 0", labels: labels).holds { _, _ in 0 } == true)
        #expect(try ExpectedOutcome.parse("p99.9(round-robin) <= 5", labels: labels).holds { _, _ in nil } == nil)
        #expect(expectation.explain(lookup) == "p99(peak-ewma) + 1 = 11 < 0.5 * p99(round-robin) - 2 = 13")
        #expect(throws: ExpectationSyntaxError.self) { try ExpectedOutcome.parse("1 < 2", labels: labels) }
    }

    @Test("expectations with confidence: 95% by default, or as written; only inequalities; errors say where")
    func expectationsWithConfidence() throws {
        let labels = ["round-robin", "peak-ewma"]
        #expect(try ExpectedOutcome.parse("p99(peak-ewma) < p99(round-robin)", labels: labels).confidence == nil)
        let plain = try ExpectedOutcome.parse("p99(peak-ewma) < p99(round-robin) with confidence", labels: labels)
        #expect(plain.confidence == 0.95 && plain.rhs.description == "p99(round-robin)")
        #expect(try ExpectedOutcome.parse("p99(peak-ewma) * 2 >= 10 with 99%  confidence", labels: labels).confidence == 0.99)
        for (text, problem) in [
            ("p99(peak-ewma) == p99(round-robin) with confidence", "use < <= > or >=, not =="),
            ("p99(peak-ewma) < p99(round-robin) with 150% confidence", "at column 40: \"150%\" is not a confidence"),
            ("p99(peak-ewma) < p99(round-robin) with conf", "expected \"with confidence\" or \"with 95% confidence\""),
            ("p99(peak-ewma) < p99(round-robin) confidently", "unexpected \"confidently\""),
        ] {
            #expect {
                try ExpectedOutcome.parse(text, labels: labels)
            } throws: { error in
                (error as? ExpectationSyntaxError)?.message.contains(problem) == true
            }
        }
    }

    @Test("every shipped scenario is valid")
    func shippedScenarios() throws {
        let root = ProxyConfigurationTests.repositoryRoot.appendingPathComponent("scenarios")
        let files = try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0.hasSuffix(".yml") }
        #expect(files.contains("quickstart.yml"))
        for file in files {
            let scenario = try Scenario.load(path: root.appendingPathComponent(file).path)
            #expect(scenario.name + ".yml" == file)
            #expect(!scenario.expectations.isEmpty, "\(file) says what it expects")
            #expect(!scenario.question.isEmpty, "\(file) says what it asks")
        }
        let webSockets = try Scenario.load(path: root.appendingPathComponent("websockets.yml").path)
        #expect(webSockets.load.webSocket && webSockets.load.webSocketPath == "/ws")
        let quickstart = try Scenario.load(path: root.appendingPathComponent("quickstart.yml").path)
        #expect(!quickstart.load.webSocket && quickstart.load.webSocketPath == nil)
        #expect(quickstart.labels == ["round-robin", "least-connections", "power-of-two"])
        #expect(quickstart.backends.count == 3 && quickstart.load.totalRate == 1_000 && quickstart.duration == .seconds(20))
    }
}
