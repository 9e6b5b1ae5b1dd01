import Foundation
public import LBCore

extension ScenarioBackend {
    static let keys = ["name", "latency", "cpu", "errors", "capacity", "queue", "weight", "limits", "in-service", "threads"]

    init(reading map: ConfigMapping, defaultName: String) throws(ConfigError) {
        self.init(name: try map["name"]?.string() ?? defaultName)
        if let name = map["name"], self.name.isEmpty || self.name.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw name.error("a backend's name is one word without slashes")
        }
        if let latency = map["latency"] { self.latency = try latency.parsed(LatencyModel.init(parsing:)) }
        if let cpu = map["cpu"] { self.cpuWork = try cpu.duration() }
        if let errors = map["errors"] { self.errors = try errors.double(in: 0...1) }
        if let capacity = map["capacity"] {
            let value = try capacity.int(in: 0...1_000_000)
            self.capacity = value == 0 ? nil : value
        }
        if let queue = map["queue"] {
            self.queue = try queue.int(in: 0...1_000_000)
            guard self.capacity != nil else { throw queue.error("queue is the wait beyond capacity: give capacity (above 0) too") }
        }
        if let weight = map["weight"] { self.weight = try weight.int(in: 1...1_000_000) }
        if let inService = map["in-service"] { self.inService = try inService.bool() }
        if let threads = map["threads"] { self.threads = try threads.int(in: 1...64) }
        if let limits = map["limits"] {
            let limitsMap = try limits.mapping(keys: ["cpu", "memory"])
            if let cpu = limitsMap["cpu"] { self.cpuLimit = try cpu.double(in: 0.01...1_024) }
            if let memory = limitsMap["memory"] { self.memoryLimit = try memory.bytes(atLeast: 8 << 20) }
        }
    }
}

extension ScenarioBackend {
    /// The backend as the `backends.spec_json` column of a run records it, with `container` telling how
    /// it ran (`none`, `cgroup v1`, `docker`, `sim`): keys sorted.
    public func specJSON(container: String) -> String? {
        var object: [String: Any] = [
            "latency": self.latency.description, "cpu": GoDuration.format(self.cpuWork), "errors": self.errors,
            "in_service": self.inService, "threads": self.threads, "container": container,
        ]
        if let capacity = self.capacity { object["capacity"] = capacity }
        if let queue = self.queue { object["queue"] = queue }
        if let cpu = self.cpuLimit { object["cpu_limit"] = cpu }
        if let memory = self.memoryLimit { object["memory_limit"] = memory }
        let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return data.map { String(decoding: $0, as: UTF8.self) }
    }
}

extension ScenarioLoad {
    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(
            keys: ["clients", "rate", "total-rate", "arrival", "keys", "path", "method", "timeout", "threads", "websocket"]
        )
        let clientsNode = try map.required("clients")
        let clients = try clientsNode.int()
        // Each client sends its own synthetic address, as loadgen's do, and there are so many of them.
        guard (1...ClientAddresses.capacity).contains(clients) else {
            throw clientsNode.error("must be between 1 and \(ClientAddresses.capacity) (one synthetic address each), got \(clients)")
        }
        let rate: Double
        switch (map["rate"], map["total-rate"]) {
        case (.some(let perClient), .none):
            rate = try perClient.double(in: 0.001...1_000_000)
        case (.none, .some(let total)):
            rate = try total.double(in: 0.001...10_000_000) / Double(clients)
        case (.some, .some(let total)):
            throw total.error("give either rate (per client) or total-rate, not both")
        case (.none, .none):
            throw node.error("rate (requests per second per client) or total-rate is required")
        }
        self.init(
            clients: clients,
            ratePerClient: rate,
            arrival: .poisson,
            keyCount: nil,
            zipf: 0,
            path: "/",
            method: "GET",
            timeout: .seconds(10),
            threads: 1
        )
        if let arrival = map["arrival"] {
            self.arrival = ArrivalProcess(rawValue: try arrival.choice(ArrivalProcess.allCases.map(\.rawValue)))!
        }
        if let keys = map["keys"] {
            let keysMap = try keys.mapping(keys: ["count", "zipf"])
            // loadgen's -keys bound: the Zipf table holds a double per key.
            self.keyCount = try keysMap.required("count").int(in: 1...10_000_000)
            if let zipf = keysMap["zipf"] { self.zipf = try zipf.double(in: 0...10) }
        }
        if let path = map["path"] {
            self.path = try path.string()
            guard self.path.hasPrefix("/") else { throw path.error("must start with /") }
        }
        if let method = map["method"] { self.method = try method.string().uppercased() }
        if let timeout = map["timeout"] { self.timeout = try timeout.duration(atLeast: .milliseconds(1)) }
        if let threads = map["threads"] { self.threads = try threads.int(in: 1...64) }
        if let webSocket = map["websocket"] {
            self.webSocket = try webSocket.bool()
            // The rules loadgen's -url ws:// follows.
            if self.webSocket, let keys = map["keys"] {
                throw keys.error(WebSocketLoad.keysProblem)
            }
            if self.webSocket, let method = map["method"], let problem = WebSocketLoad.methodProblem(self.method) {
                throw method.error(problem)
            }
        }
    }
}

extension TimelineStep {
    static let actions = ["kill", "stop", "resume", "restart", "slow", "errors", "health", "weight", "add", "remove", "drain"]

    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: ["at"] + Self.actions)
        let at = try map.required("at").duration()
        let given = Self.actions.filter { map.has($0) }
        guard given.count == 1, let name = given.first, let value = map[name] else {
            throw node.error(
                given.isEmpty
                    ? "a step needs one action: \(Self.actions.joined(separator: ", "))"
                    : "one action per step, found \(given.joined(separator: " and "))"
            )
        }
        let action: Action
        switch name {
        case "kill": action = .kill(try value.string())
        case "stop": action = .stop(try value.string())
        case "resume": action = .resume(try value.string())
        case "restart": action = .restart(try value.string())
        case "add": action = .add(try value.string())
        case "remove": action = .remove(try value.string())
        case "drain": action = .drain(try value.string())
        case "slow":
            let detail = try value.mapping(keys: ["backend", "latency"])
            action = .slow(try detail.required("backend").string(), try detail.required("latency").parsed(LatencyModel.init(parsing:)))
        case "errors":
            let detail = try value.mapping(keys: ["backend", "rate"])
            action = .errors(try detail.required("backend").string(), try detail.required("rate").double(in: 0...1))
        case "health":
            let detail = try value.mapping(keys: ["backend", "healthy"])
            action = .health(try detail.required("backend").string(), try detail.required("healthy").bool())
        default:
            let detail = try value.mapping(keys: ["backend", "weight"])
            action = .weight(try detail.required("backend").string(), try detail.required("weight").int(in: 1...1_000_000))
        }
        self.init(at: at, action: action, line: node.line)
    }
}

extension Scenario {
    /// The label of every algorithm, in order.
    public var labels: [String] { self.algorithms.map(\.label) }

    /// The seed of the proxy's pickers in a run with seed `runSeed` (the scenario's seed moved by the
    /// repeat): the same run seed repeats the same choices, another makes others. It is mixed with a
    /// stream of its own: the load generator's clients draw their arrival gaps from streams of the run
    /// seed itself, and a picker drawing from the same numbers would choose in step with the gaps (a
    /// random pick after each short gap landing on the same backend). A configuration's seed is at most
    /// `Int.max`.
    public static func pickerSeed(runSeed: UInt64) -> UInt64 {
        StableHash.combine(runSeed, 0x7069_636B_6572) & UInt64(Int.max)
    }

    /// The proxy's `config.yml` for one algorithm of the matrix in a run with seed `runSeed`: one service
    /// with the backends in service at the start (at `backendAddresses`), the algorithm's parameters
    /// with the run's ``pickerSeed(runSeed:)``, the scenario's service settings, listening on `listen`,
    /// its admin API on `admin`.
    public func proxyConfigurationYAML(
        for entry: AlgorithmUnderTest,
        runSeed: UInt64,
        listen: HostPort,
        admin: HostPort,
        backendAddresses: [String: HostPort]
    ) -> String {
        var lines = [
            "# The proxy of scenario \(self.name), algorithm \(entry.label) (written by lbctl run).",
            "listen: \"\(listen)\"",
            "admin:",
            "  listen: \"\(admin)\"",
            "threads: \(self.proxy.threads)",
            "trusted-proxies: [127.0.0.0/8, \"::1\"]   # the load generator's X-Forwarded-For names each client",
            "services:",
            "  - name: main",
            "    algorithm: \(entry.algorithm.name)",
            "    backends:",
        ]
        for backend in self.backends where backend.inService {
            let address = backendAddresses[backend.name].map(\.description) ?? "127.0.0.1:1"
            lines.append("      - {name: \(backend.name), address: \"\(address)\", weight: \(backend.weight)}")
        }
        lines.append("    parameters:")
        lines.append("      seed: \(Self.pickerSeed(runSeed: runSeed))")
        if let parameters = entry.parametersYAML {
            lines.append(contentsOf: Self.indented(parameters, by: 6))
        }
        lines.append(contentsOf: Self.indented(self.proxy.serviceYAML, by: 4))
        return lines.joined(separator: "\n") + "\n"
    }

    private static func indented(_ yaml: String, by spaces: Int) -> [String] {
        let prefix = String(repeating: " ", count: spaces)
        return yaml.split(separator: "\n", omittingEmptySubsequences: true).map { prefix + $0 }
    }
}

extension ConfigNode {
    /// A size in bytes with its unit: `512MiB`, `1GiB`, `64M` (powers of 1024 either way), `1000000B`.
    func bytes(atLeast minimum: Int64) throws(ConfigError) -> Int64 {
        let text = try self.string()
        let digits = text.prefix { $0.isNumber || $0 == "." }
        let unit = text.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        let scale: Double? =
            switch unit.lowercased() {
            case "b": 1
            case "k", "kb", "kib": 1024
            case "m", "mb", "mib": 1024 * 1024
            case "g", "gb", "gib": 1024 * 1024 * 1024
            default: nil
            }
        guard let number = Double(digits), let scale else {
            throw self.error("\"\(text)\" is not a size; write e.g. 256MiB or 1GiB")
        }
        guard number * scale < 4e18 else { throw self.error("is too large, got \(text)") }
        let value = Int64(number * scale)
        guard value >= minimum else { throw self.error("must be at least \(minimum >> 20)MiB, got \(text)") }
        return value
    }
}

