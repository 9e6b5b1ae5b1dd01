import Foundation
import LBCore

extension ProxyConfiguration {
    /// Reads and validates the configuration file at `path`.
    public static func load(path: String) throws(ConfigError) -> ProxyConfiguration {
        try Self.parse(try ConfigNode.text(ofFile: path), file: path)
    }

    /// Reads and validates a configuration from `text`, the contents of `file`.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> ProxyConfiguration {
        let root = try ConfigNode.parse(text, file: file)
        let configuration = try ProxyConfiguration(reading: root)
        try configuration.validate(file: file, root: root)
        return configuration
    }

    /// Reads a configuration document's root, field by field (what spans fields is checked by
    /// ``problems()``).
    public init(reading root: ConfigNode) throws(ConfigError) {
        let keys = ["listen", "listeners", "admin", "threads", "trusted-proxies", "access-log", "shutdown-grace", "yield-interval", "services"]
        let map = try root.mapping(keys: keys)
        self.init(listen: HostPort(host: "127.0.0.1", port: 8080), services: [])
        switch (map["listen"], map["listeners"]) {
        case (.some(let listen), .none):
            self.listeners = try listen.sequence(allowingSingle: true).map { node throws(ConfigError) in
                Listener(address: try node.hostPort())
            }
        case (.none, .some(let listeners)):
            self.listeners = try listeners.sequence().map(Listener.init(reading:))
        case (.some, .some(let listeners)):
            throw listeners.error("give either listen or listeners, not both")
        case (.none, .none):
            break
        }
        if let admin = map["admin"] {
            let adminMap = try admin.mapping(keys: ["listen", "token-env"])
            if let listen = adminMap["listen"] { self.admin.address = try listen.hostPort() }
            if let token = adminMap["token-env"] { self.admin.tokenEnvironmentVariable = try token.string() }
        }
        if let threads = map["threads"] { self.threads = try threads.int(in: 0...1024) }
        if let trusted = map["trusted-proxies"] {
            self.trustedProxies = try trusted.sequence(allowingSingle: true).map { node throws(ConfigError) in
                try node.parsed(AddressRange.init(parsing:))
            }
        }
        if let log = map["access-log"] { self.accessLog = try log.string() }
        if let grace = map["shutdown-grace"] { self.shutdownGrace = try grace.duration() }
        if let interval = map["yield-interval"] {
            self.yieldInterval = try interval.duration()
            guard Self.yieldIntervals.contains(self.yieldInterval) else {
                throw interval.error("must be at most \(GoDuration.format(Self.yieldIntervals.upperBound)) (0s: never)")
            }
        }
        self.services = try map.required("services").sequence().map(Service.init(reading:))
    }
}

extension ProxyConfiguration.Listener {
    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: ["listen", "protocol", "service"])
        self.init(address: try map.required("listen").hostPort())
        if let mode = map["protocol"] {
            self.mode = Mode(rawValue: try mode.choice(Mode.allCases.map(\.rawValue)))!
        }
        self.service = try map["service"]?.string()
        if self.mode == .tcp, self.service == nil {
            throw node.error("a tcp listener needs the service it forwards to (service: NAME)")
        }
    }
}

extension Service {
    static let keys = [
        "name", "match", "algorithm", "parameters", "hash-key", "backends", "health", "retries", "timeouts",
        "outlier-detection", "slow-start", "limits", "pool",
    ]

    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: Self.keys)
        let nameNode = try map.required("name")
        self.init(name: try nameNode.string(), backends: [])
        guard !self.name.isEmpty else { throw nameNode.error("must not be empty") }
        if let match = map["match"] { self.route = try Route(reading: match) }
        if let algorithm = map["algorithm"] {
            let name = try algorithm.string()
            guard let known = Algorithm(name: name) else {
                throw algorithm.error(
                    "\"\(name)\" is not an algorithm; known: \(Algorithm.allCases.map(\.name).joined(separator: ", ")) (and their aliases, see lbctl algorithms)"
                )
            }
            self.algorithm = known
        }
        if let parameters = map["parameters"] {
            self.parameters = try PickerParameters(reading: parameters, for: self.algorithm)
        }
        if let key = map["hash-key"] { self.hashKey = try HashKey(reading: key) }
        let backends = try map.required("backends")
        self.backends = try backends.sequence().map(BackendSpec.init(reading:))
        guard !self.backends.isEmpty else { throw backends.error("a service needs at least one backend") }
        if let health = map["health"] { self.health = try HealthCheck(reading: health) }
        if let retries = map["retries"] { try self.readRetries(retries) }
        if let timeouts = map["timeouts"] { self.timeouts = try Timeouts(reading: timeouts) }
        if let outlier = map["outlier-detection"] {
            self.outlierDetection = try OutlierDetectionConfiguration(reading: outlier)
        }
        if let slowStart = map["slow-start"] { self.slowStart = try SlowStart(reading: slowStart) }
        if let limits = map["limits"] { self.limits = try Limits(reading: limits) }
        if let pool = map["pool"] {
            let poolMap = try pool.mapping(keys: ["max-idle", "idle-timeout"])
            if let maxIdle = poolMap["max-idle"] { self.pool.maxIdle = try maxIdle.int(in: 0...100_000) }
            if let idle = poolMap["idle-timeout"] { self.pool.idleTimeout = try idle.duration(atLeast: .milliseconds(1)) }
        }
    }

    private mutating func readRetries(_ node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: ["attempts", "on", "non-idempotent", "backoff", "budget"])
        if let attempts = map["attempts"] { self.retries.maxRetries = try attempts.int(in: 0...10) }
        if let on = map["on"] {
            let names = RetryCondition.allCases.map(\.rawValue)
            self.retries.retryOn = Set(
                try on.sequence(allowingSingle: true).map { node throws(ConfigError) in
                    RetryCondition(rawValue: try node.choice(names))!
                }
            )
        }
        if let flag = map["non-idempotent"] { self.retries.retryNonIdempotent = try flag.bool() }
        if let backoff = map["backoff"] {
            let backoffMap = try backoff.mapping(keys: ["base", "max"])
            if let base = backoffMap["base"] { self.retries.backoff.base = try base.duration() }
            if let max = backoffMap["max"] { self.retries.backoff.max = try max.duration() }
            guard self.retries.backoff.max >= self.retries.backoff.base else {
                throw backoff.error("max must not be shorter than base")
            }
        }
        if let budget = map["budget"] {
            let budgetMap = try budget.mapping(keys: ["share", "min-concurrency"])
            if let share = budgetMap["share"] { self.retryBudget.share = try share.double(in: 0...1) }
            if let floor = budgetMap["min-concurrency"] { self.retryBudget.minimumConcurrency = try floor.int(in: 0...1_000_000) }
        }
    }
}

extension Service.Route {
    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: ["hosts", "host", "path-prefix"])
        self.init()
        if map.has("hosts"), let host = map["host"] { throw host.error("give either host or hosts, not both") }
        if let hosts = map["hosts"] ?? map["host"] {
            self.hosts = try hosts.sequence(allowingSingle: true).map { node throws(ConfigError) in
                let host = try node.string().lowercased()
                guard !host.isEmpty, !host.contains("/"), !host.contains(" ") else {
                    throw node.error("\"\(host)\" is not a host name")
                }
                return host
            }
        }
        if let prefix = map["path-prefix"] {
            self.pathPrefix = try prefix.string()
            guard self.pathPrefix.hasPrefix("/") else { throw prefix.error("must start with /") }
        }
    }
}

extension Service.HashKey {
    init(reading node: ConfigNode) throws(ConfigError) {
        let text = try node.string()
        switch text {
        case "client-ip": self = .clientIP
        case "path": self = .path
        case _ where text.hasPrefix("header:") && text.count > 7: self = .header(String(text.dropFirst(7)))
        case _ where text.hasPrefix("cookie:") && text.count > 7: self = .cookie(String(text.dropFirst(7)))
        default:
            throw node.error("\"\(text)\" is not a hash key; expected client-ip, path, header:NAME or cookie:NAME")
        }
    }
}

extension PickerParameters {
    /// The keys of a service's `parameters:`.
    static let keys = ["seed", "draws", "decay", "default-latency", "virtual-nodes", "load-factor", "table-size", "sticky-capacity", "resource-floor", "resource-max-age"]

    init(reading node: ConfigNode, for algorithm: Algorithm) throws(ConfigError) {
        let map = try node.mapping(keys: Self.keys)
        self.init()
        if let seed = map["seed"] { self.seed = UInt64(try seed.int(in: 0...Int.max)) }
        if let draws = map["draws"] { self.draws = try draws.int() }
        if let decay = map["decay"] { self.decay = try decay.duration() }
        if let latency = map["default-latency"] { self.defaultLatency = try latency.duration() }
        if let nodes = map["virtual-nodes"] { self.virtualNodes = try nodes.int() }
        if let factor = map["load-factor"] {
            self.loadFactor = try factor.string() == "none" ? nil : try factor.double()
        }
        if let size = map["table-size"] { self.tableSize = try size.int() }
        if let capacity = map["sticky-capacity"] { self.stickyCapacity = try capacity.int() }
        if let floor = map["resource-floor"] { self.resourceFloor = try floor.double() }
        if let age = map["resource-max-age"] { self.resourceMaxAge = try age.duration() }
        do {
            try self.validate(for: algorithm)
        } catch {
            throw (map[error.parameter] ?? node).error(error.problem)
        }
    }
}

extension BackendSpec {
    init(reading node: ConfigNode) throws(ConfigError) {
        if case .scalar = node.node {
            self.init(address: try node.hostPort())
            return
        }
        let map = try node.mapping(keys: ["name", "address", "weight"])
        let name = try map["name"]?.string()
        self.init(name: name, address: try map.required("address").hostPort())
        if let weight = map["weight"] { self.weight = try weight.int(in: 1...1_000_000) }
    }
}

extension Service.HealthCheck {
    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: ["type", "path", "expect-status", "interval", "timeout", "rise", "fall"])
        let type = try map["type"]?.choice(["http", "tcp"]) ?? "http"
        if type == "tcp" {
            for key in ["path", "expect-status"] {
                if let node = map[key] { throw node.error("applies to http checks only (type: http)") }
            }
            self.init(probe: .tcp)
        } else {
            let path = try map["path"]?.string() ?? "/health"
            if let pathNode = map["path"], !path.hasPrefix("/") { throw pathNode.error("must start with /") }
            let status = try map["expect-status"]?.int(in: 100...599) ?? 200
            self.init(probe: .http(path: path, expectStatus: status))
        }
        if let interval = map["interval"] { self.timing.interval = try interval.duration(atLeast: .milliseconds(10)) }
        if let timeout = map["timeout"] { self.timing.timeout = try timeout.duration(atLeast: .milliseconds(1)) }
        if let rise = map["rise"] { self.timing.rise = try rise.int(in: 1...100) }
        if let fall = map["fall"] { self.timing.fall = try fall.int(in: 1...100) }
        do {
            try self.timing.validate()
        } catch {
            throw (map[error.field] ?? node).error(error.problem)
        }
    }
}

extension Service.Timeouts {
    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: ["connect", "response-header", "request", "client-idle", "tunnel"])
        self.init()
        let minimum = Duration.milliseconds(1)
        if let connect = map["connect"] { self.connect = try connect.duration(atLeast: minimum) }
        if let header = map["response-header"] { self.responseHeader = try header.duration(atLeast: minimum) }
        if let request = map["request"] { self.request = try request.duration(atLeast: minimum) }
        if let idle = map["client-idle"] { self.clientIdle = try idle.duration(atLeast: minimum) }
        if let tunnel = map["tunnel"] { self.tunnel = try tunnel.duration(atLeast: minimum) }
    }
}

extension OutlierDetectionConfiguration {
    init(reading node: ConfigNode) throws(ConfigError) {
        let keys = ["consecutive-failures", "base-ejection-time", "max-ejection-time", "max-ejected-share", "forgive-after"]
        let map = try node.mapping(keys: keys)
        self.init()
        if let failures = map["consecutive-failures"] { self.consecutiveFailures = try failures.int(in: 1...1_000_000) }
        if let base = map["base-ejection-time"] { self.baseEjectionTime = try base.duration(atLeast: .milliseconds(1)) }
        if let max = map["max-ejection-time"] { self.maxEjectionTime = try max.duration(atLeast: .milliseconds(1)) }
        if let share = map["max-ejected-share"] { self.maxEjectedShare = try share.double(in: 0...1) }
        if let forgive = map["forgive-after"] { self.forgiveAfter = try forgive.duration(atLeast: .milliseconds(1)) }
        if self.maxEjectionTime < self.baseEjectionTime {
            throw (map["max-ejection-time"] ?? node).error("must not be shorter than base-ejection-time")
        }
    }
}

extension SlowStart {
    init(reading node: ConfigNode) throws(ConfigError) {
        if case .scalar = node.node {
            self.init(window: try node.duration())
            return
        }
        let map = try node.mapping(keys: ["window", "min-share"])
        self.init(
            window: try map.required("window").duration(),
            minimumShare: try map["min-share"]?.double(in: 0...1) ?? 0.1
        )
    }
}

extension Service.Limits {
    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: ["max-connections", "max-queue", "queue-timeout"])
        self.init()
        if let connections = map["max-connections"] { self.maxConnections = try connections.int(in: 1...10_000_000) }
        if let queue = map["max-queue"] { self.maxQueued = try queue.int(in: 0...10_000_000) }
        if let timeout = map["queue-timeout"] { self.queueTimeout = try timeout.duration(atLeast: .milliseconds(1)) }
    }
}
