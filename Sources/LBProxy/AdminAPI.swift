import Foundation
import LBConfig
public import LBCore
import NIOCore

/// The admin API (DESIGN §6), apart from its listener: each request in, its answer out.
///
/// - `GET /health`: the proxy is up (needs no token).
/// - `GET /backends`: every service's backends with weight, state, health, ejection, draining and
///   requests in flight.
/// - `POST /backends` `{"service", "name", "address", "weight"}`: adds a backend (`service` may be left
///   out when there is one service; `name` defaults to the address, `weight` to 1).
/// - `DELETE /backends/NAME`, `POST /backends/NAME/drain`, `POST /backends/NAME/resume`,
///   `PUT /backends/NAME/weight` `{"weight": n}`: remove, drain, undrain, reweight (`?service=S` when
///   the name is in more than one service).
/// - `PUT /backends/NAME/usage` `{"cpu": 0.83, "memory": 0.41}`: the backend's resource use as shares
///   of its limits (either or both; the higher counts), for `least-resources`. Any agent that measures
///   the backends can send them, as HAProxy's agent-check reports a server's load; `lbctl run` sends
///   what its sampler measures. A figure counts for the algorithm's `resource-max-age`; a proxy that
///   records a run keeps each as an event `usage`.
/// - `GET /metrics`: Prometheus' text format.
/// - `POST /register` `{"address": "http://host:port", "weight": n}`: the seed balancers' registration
///   call, answered in JSend: 200 `success`; 400 `fail` when the body is missing or malformed or the
///   address does not accept connections; 403 `fail` for a field other than `address` and `weight`.
///   Registering an address again sets its weight.
///
/// When a token is configured, every call but `GET /health` needs `Authorization: Bearer TOKEN`.
public struct AdminAPI: Sendable {
    /// A request, as the listener read it.
    public struct Request: Sendable {
        public var method: String
        /// The path and query, as sent.
        public var target: String
        public var authorization: String?
        public var body: [UInt8]

        public init(method: String, target: String, authorization: String? = nil, body: [UInt8] = []) {
            self.method = method
            self.target = target
            self.authorization = authorization
            self.body = body
        }
    }

    /// An answer.
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]

        static func json(_ status: Int, _ value: Any) -> Response {
            let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("{}".utf8)
            return Response(status: status, contentType: "application/json", body: Array(data) + [0x0A])
        }

        /// `{"error": message}`.
        static func error(_ status: Int, _ message: String) -> Response {
            .json(status, ["error": message])
        }
    }

    let runtime: ProxyRuntime
    let token: String?
    /// Whether an address accepts TCP connections (for `/register`).
    let isAlive: @Sendable (HostPort) async -> Bool

    /// The API over `runtime`; `token`, when not empty, is required of callers.
    public init(runtime: ProxyRuntime, token: String?, isAlive: @escaping @Sendable (HostPort) async -> Bool) {
        self.runtime = runtime
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
        self.isAlive = isAlive
    }

    /// The answer to `request`.
    public func handle(_ request: Request) async -> Response {
        let (path, query) = Self.split(request.target)
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if request.method == "GET", parts == ["health"] {
            return .json(200, ["status": "ok"])
        }
        if let token = self.token, !Self.sameBytes(request.authorization ?? "", "Bearer \(token)") {
            return .error(401, "a bearer token is required (Authorization: Bearer ...)")
        }
        switch (request.method, parts.count, parts.first) {
        case ("GET", 1, "metrics"):
            return Response(status: 200, contentType: "text/plain; version=0.0.4", body: self.runtime.metrics.emit(self.runtime.services))
        case ("GET", 1, "backends"):
            return .json(200, ["services": self.runtime.services.map(Self.describe)])
        case ("POST", 1, "backends"):
            return self.add(request.body)
        case ("POST", 1, "register"):
            return await self.register(request.body)
        case (_, 2, "backends"), (_, 3, "backends"):
            return self.change(method: request.method, name: parts[1], action: parts.count == 3 ? parts[2] : nil, query: query, body: request.body)
        case (_, _, "health"), (_, _, "metrics"), (_, _, "backends"), (_, _, "register"):
            return .error(405, "\(request.method) is not allowed on \(path)")
        default:
            return .error(404, "no such endpoint: \(path)")
        }
    }

    // MARK: Backends

    private static func describe(_ service: ServiceRuntime) -> [String: Any] {
        [
            "name": service.settings.name,
            "algorithm": service.tunables.algorithm.name,
            "backends": service.backends.map(Self.describe),
        ]
    }

    private static func describe(_ backend: BackendRuntime) -> [String: Any] {
        let state = backend.state
        let summary = !state.isHealthy ? "down" : state.isEjected ? "ejected" : state.isDraining ? "draining" : "up"
        return [
            "name": backend.spec.name,
            "address": backend.spec.address.description,
            "weight": backend.spec.weight,
            "state": summary,
            "healthy": state.isHealthy,
            "ejected": state.isEjected,
            "draining": state.isDraining,
            "inFlight": state.inFlight,
            "usage": state.lastResourceUsage.map(\.usage) ?? NSNull(),
            "usageAgeSeconds": state.lastResourceUsage.map { (Self.now() - $0.at).seconds } ?? NSNull(),
        ]
    }

    /// The clock of the proxy's picks.
    private static func now() -> Instant {
        Instant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))
    }

    private func add(_ body: [UInt8]) -> Response {
        let object: [String: Any]
        switch Self.object(body, allowed: ["service", "name", "address", "weight"]) {
        case .failure(let problem): return .error(problem.status, problem.message)
        case .success(let value): object = value
        }
        guard let addressText = object["address"] as? String else { return .error(400, "\"address\" (host:port) is required") }
        let address: HostPort
        do {
            address = try HostPort(parsing: addressText)
        } catch {
            return .error(400, "address \(error)")
        }
        guard let weight = Self.int(object["weight"] ?? 1) else { return .error(400, "\"weight\" must be a whole number") }
        if object["name"] != nil, !(object["name"] is String) { return .error(400, "\"name\" must be a string") }
        let name = (object["name"] as? String) ?? address.description
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .error(400, "\"name\" must be visible ASCII without spaces (it goes into a header)")
        }
        let service: ServiceRuntime
        switch self.service(object["service"] as? String) {
        case .failure(let problem): return .error(problem.status, problem.message)
        case .success(let found): service = found
        }
        do {
            let added = try service.add(BackendSpec(name: name, address: address, weight: weight))
            self.runtime.recorder?.event("backend_added", name, ["service": service.settings.name, "address": address.description, "weight": String(weight)])
            return .json(201, ["service": service.settings.name, "backend": Self.describe(added)])
        } catch {
            return .error(409, "\(error)")
        }
    }

    private func change(method: String, name: String, action: String?, query: [String: String], body: [UInt8]) -> Response {
        let matches = self.runtime.services.filter { service in
            (query["service"].map { $0 == service.settings.name } ?? true) && service.backend(named: name) != nil
        }
        guard let service = matches.first else { return .error(404, "no backend named \(name)") }
        guard matches.count == 1 else {
            return .error(409, "\(name) is in services \(matches.map(\.settings.name).joined(separator: ", ")); say which with ?service=")
        }
        let backend = service.backend(named: name)!
        switch (method, action) {
        case ("DELETE", nil):
            _ = try? service.remove(named: name)
            self.runtime.recorder?.event("backend_removed", name, ["service": service.settings.name])
            return .json(200, ["service": service.settings.name, "removed": name])
        case ("POST", "drain"):
            backend.state.setDraining(true)
            self.runtime.recorder?.event("drain", name, ["service": service.settings.name])
            return .json(200, ["service": service.settings.name, "backend": Self.describe(backend)])
        case ("POST", "resume"):
            backend.state.setDraining(false)
            self.runtime.recorder?.event("resume", name, ["service": service.settings.name])
            return .json(200, ["service": service.settings.name, "backend": Self.describe(backend)])
        case ("PUT", "weight"):
            let object: [String: Any]
            switch Self.object(body, allowed: ["weight"]) {
            case .failure(let problem): return .error(problem.status, problem.message)
            case .success(let value): object = value
            }
            guard let weight = object["weight"].flatMap(Self.int) else { return .error(400, "\"weight\" (a whole number) is required") }
            do {
                try service.setWeight(weight, of: name)
            } catch {
                return .error(400, "\(error)")
            }
            self.runtime.recorder?.event("weight", name, ["service": service.settings.name, "weight": String(weight)])
            return .json(200, ["service": service.settings.name, "backend": Self.describe(service.backend(named: name)!)])
        case ("PUT", "usage"):
            let object: [String: Any]
            switch Self.object(body, allowed: ["cpu", "memory"]) {
            case .failure(let problem): return .error(problem.status, problem.message)
            case .success(let value): object = value
            }
            var shares: [Double] = []
            for key in ["cpu", "memory"] {
                guard let value = object[key] else { continue }
                guard let share = Self.share(value) else {
                    return .error(400, "\"\(key)\" must be a number from 0 (idle) to 1 (at its limit) or somewhat above, got \(value)")
                }
                shares.append(share)
            }
            guard let usage = shares.max() else { return .error(400, "give \"cpu\" or \"memory\" (a share of the backend's limit)") }
            backend.state.setResourceUsage(usage, now: Self.now())
            // The figures the picker saw, over time, for a run that records.
            var detail = ["service": service.settings.name]
            for key in ["cpu", "memory"] where object[key] != nil { detail[key] = "\(Self.share(object[key]!)!)" }
            self.runtime.recorder?.event("usage", name, detail)
            return .json(200, ["service": service.settings.name, "backend": Self.describe(backend)])
        case (_, nil), (_, "drain"), (_, "resume"), (_, "weight"), (_, "usage"):
            return .error(405, "\(method) is not allowed here")
        default:
            return .error(404, "no such endpoint: /backends/\(name)/\(action ?? "")")
        }
    }

    // MARK: /register (JSend)

    private func register(_ body: [UInt8]) async -> Response {
        func fail(_ status: Int, _ title: String) -> Response {
            .json(status, ["status": "fail", "data": ["title": title]])
        }
        let object: [String: Any]
        switch Self.object(body, allowed: ["address", "weight"]) {
        case .failure(let problem): return fail(problem.status, problem.message)
        case .success(let value): object = value
        }
        guard let given = object["address"] as? String, !given.isEmpty else { return fail(400, "\"address\" is required") }
        guard let weight = Self.int(object["weight"] ?? 1), weight >= 1 else { return fail(400, "\"weight\" must be a whole number of at least 1") }
        var text = Substring(given)
        if text.hasPrefix("http://") { text = text.dropFirst(7) }
        while text.hasSuffix("/") { text = text.dropLast() }
        guard !text.contains("/"), let address = try? HostPort(parsing: String(text)) else {
            return fail(400, "\(given) is not an address like http://127.0.0.1:1080")
        }
        let service: ServiceRuntime
        switch self.service(nil) {
        case .failure(let problem): return fail(problem.status, problem.message)
        case .success(let found): service = found
        }
        guard await self.isAlive(address) else { return fail(400, "\(given) not alive, registration failed.") }
        do {
            if let existing = service.backends.first(where: { $0.spec.address == address }) {
                try service.setWeight(weight, of: existing.spec.name)
            } else {
                try service.add(BackendSpec(name: address.description, address: address, weight: weight))
            }
            self.runtime.recorder?.event("register", address.description, ["service": service.settings.name, "weight": String(weight)])
        } catch {
            return fail(400, "\(error)")
        }
        return .json(200, ["status": "success", "data": ["server": given, "weight": weight]])
    }

    // MARK: Reading

    private struct Problem: Error {
        var status: Int
        var message: String
    }

    /// The service named `name`, or when `nil` the one a request without a route goes to (or the only
    /// one).
    private func service(_ name: String?) -> Result<ServiceRuntime, Problem> {
        if let name {
            guard let service = self.runtime.service(named: name) else { return .failure(Problem(status: 404, message: "no service named \(name)")) }
            return .success(service)
        }
        if let service = self.runtime.defaultService() { return .success(service) }
        return .failure(Problem(status: 400, message: "\"service\" is required: there are several and none is the default"))
    }

    /// The JSON object in `body`, with no keys outside `allowed` (403 for one, 400 for a body that is
    /// missing or not a JSON object).
    private static func object(_ body: [UInt8], allowed: Set<String>) -> Result<[String: Any], Problem> {
        guard !body.isEmpty else { return .failure(Problem(status: 400, message: "the request body is missing")) }
        guard let value = try? JSONSerialization.jsonObject(with: Data(body)), let object = value as? [String: Any] else {
            return .failure(Problem(status: 400, message: "the request body is not a JSON object"))
        }
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            return .failure(Problem(status: 403, message: "unknown field \"\(unknown)\"; allowed: \(allowed.sorted().joined(separator: ", "))"))
        }
        return .success(object)
    }

    /// A resource share from JSON: a number (not a Boolean) from 0 to 100.
    private static func share(_ value: Any) -> Double? {
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        let double = number.doubleValue
        return (0...100).contains(double) ? double : nil
    }

    /// A whole number from JSON (not a Boolean, not a fraction).
    private static func int(_ value: Any) -> Int? {
        // A JSON `true` comes as an NSNumber too, of Objective-C type `c`.
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        let double = number.doubleValue
        guard double.rounded() == double, abs(double) < 1e15 else { return nil }
        return Int(double)
    }

    /// Whether `given` and `expected` are the same bytes, in a time that depends on their lengths only,
    /// not on where they first differ: a caller cannot find the token a byte at a time by timing
    /// refusals.
    static func sameBytes(_ given: String, _ expected: String) -> Bool {
        let given = Array(given.utf8)
        let expected = Array(expected.utf8)
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for index in expected.indices {
            difference |= expected[index] ^ (index < given.count ? given[index] : ~expected[index])
        }
        return difference == 0
    }

    private static func split(_ target: String) -> (String, [String: String]) {
        guard let mark = target.firstIndex(of: "?") else { return (target, [:]) }
        var query: [String: String] = [:]
        for pair in target[target.index(after: mark)...].split(separator: "&") {
            // Empty parts kept: a pair "=" is an empty name and value, not no parts at all.
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            query[String(parts[0])] = parts.count == 2 ? String(parts[1]).removingPercentEncoding ?? String(parts[1]) : ""
        }
        return (String(target[..<mark]), query)
    }
}
