import Foundation
import LBCore
import Yams

extension Scenario {
    static let keys = [
        "name", "question", "seed", "duration", "warmup", "repeats", "algorithms", "backends", "load", "timeline",
        "proxy", "expect", "sample-interval", "sim", "sweep", "slo",
    ]

    /// Reads and validates the scenario file at `path`.
    public static func load(path: String) throws(ConfigError) -> Scenario {
        try Self.parse(try ConfigNode.text(ofFile: path), file: path)
    }

    /// Reads and validates a scenario from `text`, the contents of `file`.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> Scenario {
        let root = try ConfigNode.parse(text, file: file)
        var scenario = try Self.read(root, text: text)
        guard let sweepNode = try root.mapping(keys: Self.keys)["sweep"] else {
            try scenario.checkSweepFigures(try root.mapping(keys: Self.keys)["expect"])
            return scenario
        }
        let sweep = try Sweep(reading: sweepNode, root: root.node)
        scenario.sweep = sweep
        try scenario.checkSweepFigures(try root.mapping(keys: Self.keys)["expect"])
        // Every point is read before anything starts; shares of capacity against a stand-in capacity
        // until a probe measures the fleet's.
        for point in sweep.points {
            _ = try scenario.at(point, capacity: sweep.needsCapacity ? Self.standInCapacity : nil)
        }
        return scenario
    }

    /// Expectations that name an algorithm at a sweep point (`p99(random@backends.count=64)`) need that
    /// point in the sweep. Those that name a sweep's figures (`knee`, `slo-throughput`) need a sweep of one field (the
    /// load, for the throughput at the service level, with an `slo:`), name no run's figure beside
    /// them, and compare values, not paired runs.
    private func checkSweepFigures(_ expect: ConfigNode?) throws(ConfigError) {
        guard let expect else { return }
        for (expectation, node) in zip(self.expectations, try expect.sequence(allowingSingle: true)) {
            for (_, label) in expectation.lhs.metrics + expectation.rhs.metrics {
                guard let point = ExpectedOutcome.split(label).point else { continue }
                guard let sweep = self.sweep else { throw node.error("\(label) names a sweep point; this scenario has no sweep") }
                let points = sweep.points.map(\.description)
                guard ExpectedOutcome.point(named: point, among: points) != nil else {
                    throw node.error("\"\(point)\" names no one point of the sweep; its points: \(points.joined(separator: ", "))")
                }
            }
            let named = (expectation.lhs.metrics + expectation.rhs.metrics).map(\.0)
            guard named.contains(where: \.isSweepFigure) else { continue }
            guard let sweep = self.sweep, sweep.parameters.count == 1 else {
                throw node.error("knee and slo-throughput are figures of a sweep of one field; this scenario has \(self.sweep == nil ? "no sweep" : "a sweep of several")")
            }
            if named.contains(.serviceLevelThroughput) {
                guard Sweep.capacityPaths.contains(sweep.parameters[0].path) else { throw node.error("slo-throughput needs a sweep of the load (load.total-rate or load.rate)") }
                guard self.serviceLevel != nil else { throw node.error("slo-throughput needs the scenario's slo:, e.g. slo: {p99: 50ms, error-rate: 0.01}") }
            }
            guard named.allSatisfy(\.isSweepFigure) else { throw node.error("a sweep's figures (knee, slo-throughput) cannot be compared with each run's in one expectation") }
            guard expectation.confidence == nil else { throw node.error("a sweep's figures are one per algorithm: \"with confidence\" does not apply") }
        }
    }

    /// The capacity shares of a sweep are checked against before a probe measures the real one.
    static let standInCapacity = 1_000.0

    /// Reads `root` (of `text`) as a scenario, leaving its sweep aside.
    static func read(_ root: ConfigNode, text: String) throws(ConfigError) -> Scenario {
        let file = root.file
        let map = try root.mapping(keys: Self.keys)
        let defaultName = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        let name = try map["name"]?.string() ?? defaultName
        let duration = try map.required("duration").duration(atLeast: .milliseconds(100))
        let warmupNode = map["warmup"]
        let warmup = try warmupNode?.duration() ?? .zero
        if let warmupNode, warmup >= duration {
            throw warmupNode.error("must be shorter than the duration (\(GoDuration.format(duration)))")
        }
        let algorithmsNode = try map.required("algorithms")
        let algorithms = try algorithmsNode.sequence(allowingSingle: true).map(AlgorithmUnderTest.init(reading:))
        guard !algorithms.isEmpty else { throw algorithmsNode.error("name at least one algorithm") }
        var labels = Set<String>()
        for (index, entry) in algorithms.enumerated() where !labels.insert(entry.label).inserted {
            throw (try algorithmsNode.sequence(allowingSingle: true))[index].error("\"\(entry.label)\" appears twice; give one a label")
        }
        let backendsNode = try map.required("backends")
        let backends = try Self.readBackends(backendsNode)
        let proxyNode = map["proxy"]
        let proxy = try ProxySettings(reading: proxyNode, file: file)
        var scenario = Scenario(
            name: name,
            question: try map["question"]?.string() ?? "",
            seed: UInt64(try map["seed"]?.int(in: 0...Int.max) ?? 1),
            duration: duration,
            warmup: warmup,
            repeats: try map["repeats"]?.int(in: 1...1_000) ?? 1,
            algorithms: algorithms,
            backends: backends,
            load: try ScenarioLoad(reading: try map.required("load")),
            timeline: [],
            proxy: proxy,
            expectations: [],
            sampleInterval: try map["sample-interval"]?.duration(atLeast: .milliseconds(10)) ?? .milliseconds(250),
            file: file,
            text: text
        )
        if let sim = map["sim"] { scenario.simulation = try SimulationModel(reading: sim) }
        if let slo = map["slo"] { scenario.serviceLevel = try ServiceLevel(reading: slo) }
        if let timeline = map["timeline"] {
            scenario.timeline = try timeline.sequence().map { node throws(ConfigError) in try TimelineStep(reading: node) }
            try scenario.checkTimeline(try timeline.sequence())
        }
        try scenario.checkProxy(proxyNode ?? root)
        if let expect = map["expect"] {
            scenario.expectations = try expect.sequence(allowingSingle: true).map { node throws(ConfigError) in
                let text = try node.string()
                do throws(ExpectationSyntaxError) {
                    return try ExpectedOutcome.parse(text, labels: algorithms.map(\.label), line: node.line)
                } catch {
                    throw node.error(error.message)
                }
            }
        }
        return scenario
    }

    private static func readBackends(_ node: ConfigNode) throws(ConfigError) -> [ScenarioBackend] {
        var backends: [ScenarioBackend]
        if case .mapping = node.node {
            let map = try node.mapping(keys: ["count"] + ScenarioBackend.keys)
            let count = try map.required("count").int(in: 1...Self.simulatedBackendLimit)
            // Read once: every one is the same but for its name.
            let template = try ScenarioBackend(reading: map, defaultName: "b1")
            backends = (1...count).map { index in
                var backend = template
                backend.name = "b\(index)"
                return backend
            }
            if map.has("name") { throw try map.required("name").error("with count, backends are named b1, b2, …; list them to name each") }
        } else {
            backends = try node.sequence().enumerated().map { index, entry throws(ConfigError) in
                try ScenarioBackend(reading: try entry.mapping(keys: ScenarioBackend.keys), defaultName: "b\(index + 1)")
            }
            guard !backends.isEmpty else { throw node.error("a scenario needs at least one backend") }
            guard backends.count <= Self.simulatedBackendLimit else {
                throw node.error("at most \(Self.simulatedBackendLimit) backends, got \(backends.count)")
            }
            var seen = Set<String>()
            for (index, backend) in backends.enumerated() where !seen.insert(backend.name).inserted {
                throw (try node.sequence())[index].error("backend name \"\(backend.name)\" is used twice")
            }
        }
        guard backends.contains(where: \.inService) else {
            throw node.error("at least one backend must be in service at the start")
        }
        return backends
    }

    /// Steps in time order, within the run, on backends that exist, each possible when it comes.
    private mutating func checkTimeline(_ nodes: [ConfigNode]) throws(ConfigError) {
        let names = Set(self.backends.map(\.name))
        var running = Set(self.backends.map(\.name))  // processes alive and not stopped
        var stopped = Set<String>()
        var inService = Set(self.backends.filter(\.inService).map(\.name))
        var previous = Duration.zero
        for (step, node) in zip(self.timeline, nodes) {
            let name = step.action.backend
            guard names.contains(name) else {
                throw node.error("no backend named \"\(name)\"; backends: \(self.backends.map(\.name).joined(separator: ", "))")
            }
            guard step.at < self.duration else {
                throw node.error("at \(GoDuration.format(step.at)) is not within the duration (\(GoDuration.format(self.duration)))")
            }
            guard step.at >= previous else { throw node.error("steps must be in time order") }
            previous = step.at
            switch step.action {
            case .kill:
                guard running.contains(name) || stopped.contains(name) else { throw node.error("\(name) is not running then") }
                running.remove(name)
                stopped.remove(name)
            case .stop:
                guard running.contains(name) else { throw node.error("\(name) is not running then") }
                running.remove(name)
                stopped.insert(name)
            case .resume:
                guard stopped.contains(name) else { throw node.error("\(name) is not stopped then; resume follows stop") }
                stopped.remove(name)
                running.insert(name)
            case .restart:
                guard !running.contains(name), !stopped.contains(name) else {
                    throw node.error("\(name) is still running then; restart follows kill")
                }
                running.insert(name)
            case .add:
                guard !inService.contains(name) else { throw node.error("\(name) is in service then; add a backend with in-service: false") }
                inService.insert(name)
            case .remove:
                guard inService.remove(name) != nil else { throw node.error("\(name) is not in service then") }
            case .drain, .weight:
                guard inService.contains(name) else { throw node.error("\(name) is not in service then") }
            case .slow, .errors, .health:
                break
            }
        }
    }

    /// The proxy's service as the scenario configures it, for every algorithm: read with the same
    /// strict rules as `config.yml`, so a mistake is found before anything starts.
    private func checkProxy(_ node: ConfigNode) throws(ConfigError) {
        for entry in self.algorithms {
            do {
                _ = try self.service(for: entry, runSeed: self.seed)
            } catch {
                let field = error.field.replacingOccurrences(of: "services[0].", with: "proxy.")
                throw node.error("with \(entry.label): \(field): \(error.problem)")
            }
        }
    }

    /// The proxy's service for `entry` in a run with seed `runSeed`, as the proxy reads it from the
    /// configuration a real run writes (``proxyConfigurationYAML(for:runSeed:listen:admin:backendAddresses:)``):
    /// its algorithm, parameters, health, retries, timeouts, outlier detection, slow start, limits and
    /// hash key. One backend stands for the scenario's (a simulated scenario may have more than
    /// loopback has ports).
    public func service(for entry: AlgorithmUnderTest, runSeed: UInt64) throws(ConfigError) -> Service {
        var probe = self
        probe.backends = Array(self.backends.prefix(1)).map { backend in
            var member = backend
            member.inService = true
            return member
        }
        let text = probe.proxyConfigurationYAML(
            for: entry,
            runSeed: runSeed,
            listen: HostPort(host: "127.0.0.1", port: 8080),
            admin: HostPort(host: "127.0.0.1", port: 9900),
            backendAddresses: Dictionary(uniqueKeysWithValues: probe.backends.map { ($0.name, HostPort(host: "127.0.0.1", port: 9001)) })
        )
        return try ProxyConfiguration.parse(text, file: "proxy").services[0]
    }
}

extension Scenario.AlgorithmUnderTest {
    init(reading node: ConfigNode) throws(ConfigError) {
        if case .scalar = node.node {
            let name = try node.string()
            guard let algorithm = Algorithm(name: name) else { throw Self.unknown(name, node) }
            self.init(label: algorithm.name, algorithm: algorithm, parametersYAML: nil)
            return
        }
        let map = try node.mapping(keys: ["label", "algorithm", "parameters"])
        let algorithmNode = try map.required("algorithm")
        let name = try algorithmNode.string()
        guard let algorithm = Algorithm(name: name) else { throw Self.unknown(name, algorithmNode) }
        var parametersYAML: String?
        if let parameters = map["parameters"] {
            _ = try PickerParameters(reading: parameters, for: algorithm)
            // Each run's picker seed derives from the run's seed (scenario seed and repeat); a fixed one
            // here would make every repeat choose alike.
            if let seed = try parameters.mapping(keys: PickerParameters.keys)["seed"] {
                throw seed.error("a run's picker seed derives from the scenario's seed and the repeat; set seed: at the top of the scenario")
            }
            // Block style whatever the file used, so the proxy's configuration can put the seed beside it.
            guard case .mapping(let given) = parameters.node else { throw parameters.error("expected a mapping") }
            parametersYAML = try? Yams.serialize(node: .mapping(Node.Mapping(given.map { ($0.key, $0.value) }, given.tag, .block)))
        }
        let label = try map["label"]?.string() ?? algorithm.name
        guard !label.isEmpty, !label.contains(where: { $0 == "(" || $0 == ")" || $0 == "," || $0.isWhitespace }) else {
            throw (map["label"] ?? node).error("a label is one word without parentheses or commas")
        }
        self.init(label: label, algorithm: algorithm, parametersYAML: parametersYAML)
    }

    private static func unknown(_ name: String, _ node: ConfigNode) -> ConfigError {
        node.error("\"\(name)\" is not an algorithm; known: \(Algorithm.allCases.map(\.name).joined(separator: ", ")) (and their aliases, see lbctl algorithms)")
    }
}

extension Scenario.ProxySettings {
    static let serviceKeys = ["hash-key", "health", "retries", "timeouts", "outlier-detection", "slow-start", "limits", "pool"]

    init(reading node: ConfigNode?, file: String) throws(ConfigError) {
        self.init(serviceYAML: "", threads: 1)
        guard let node else { return }
        let map = try node.mapping(keys: Self.serviceKeys + ["threads"])
        if let threads = map["threads"] { self.threads = try threads.int(in: 1...64) }
        var pairs: [(Node, Node)] = []
        for key in Self.serviceKeys {
            if let value = map[key] { pairs.append((Node(key), value.node)) }
        }
        guard !pairs.isEmpty else { return }
        // Read as a service of config.yml, where the keys are, so that an error names its own line.
        let probe = pairs + [(Node("name"), Node("main")), (Node("backends"), Node([Node("127.0.0.1:9001")]))]
        _ = try Service(reading: ConfigNode(node: Node.mapping(Node.Mapping(probe)), file: file, field: "proxy"))
        self.serviceYAML = (try? Yams.serialize(node: Node.mapping(Node.Mapping(pairs)))) ?? ""
    }
}
