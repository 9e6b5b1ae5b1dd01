public import LBConfig
public import LBCore
import NIOCore
import Synchronization

/// What every event loop of the proxy shares: the configuration, the services, the router, the header
/// rewriter, and one ``BackendState`` per backend, whose atomics carry what must be global (requests
/// in flight, health, ejection, draining) so that least-connections and P2C on one loop see the load
/// of all.
///
/// A reload may add and remove services, change routes and the trusted proxies: each event loop takes
/// up the new ``Table`` with its next request, when ``generation`` has moved (one relaxed load).
public final class ProxyRuntime: Sendable {
    /// What a reload changes together.
    struct Table: Sendable {
        /// The configuration it runs: the file's last valid one, with the listeners and admin it could
        /// bind, the threads it started with, and the access log it writes to.
        var configuration: ProxyConfiguration
        /// Every service run since the start, by the index requests and loops know it by. A removed
        /// service keeps its index, retired, for the requests still in flight on it (a few hundred
        /// bytes and its backends' state for each service a reload removes, for the process's life).
        var all: [ServiceRuntime]
        /// The indices in `all` of the services that run, in configuration order.
        var running: [Int]
        /// Routes requests to the running services (by their index in `all`).
        var router: ServiceRouter
        var forwarded: ForwardedHeaders

        init(configuration: ProxyConfiguration, all: [ServiceRuntime], running: [Int]) {
            self.configuration = configuration
            self.all = all
            self.running = running
            self.router = ServiceRouter(indexed: running.map { ($0, Self.configured(all[$0], in: configuration)) })
            self.forwarded = ForwardedHeaders(trustedProxies: configuration.trustedProxies)
        }

        /// How `configuration` configures the running `service` (its services are the running ones, by
        /// name).
        static func configured(_ service: ServiceRuntime, in configuration: ProxyConfiguration) -> Service {
            configuration.services.first { $0.name == service.settings.name }!
        }
    }

    private let table: Mutex<Table>
    private let generationCounter = Atomic<Int>(0)
    /// What `GET /metrics` shows.
    public let metrics: ProxyMetrics
    /// Where request rows, events and access-log lines go, if anywhere.
    public let recorder: ProxyRecorder?
    private let clientIdle: Atomic<UInt64>

    /// The runtime of `configuration`; it must have passed ``ProxyConfiguration/problems()``.
    public init(configuration: ProxyConfiguration, recorder: ProxyRecorder? = nil) {
        self.recorder = recorder
        let metrics = ProxyMetrics()
        self.metrics = metrics
        let services = configuration.services.map { ServiceRuntime($0, metrics: metrics, recorder: recorder) }
        self.table = Mutex(Table(configuration: configuration, all: services, running: Array(services.indices)))
        self.clientIdle = Atomic(Self.clientIdleNanos(configuration.services.map(\.timeouts)))
    }

    /// The configuration it runs (after a reload, the file's, but for what takes a restart).
    public var configuration: ProxyConfiguration {
        self.table.withLock { $0.configuration }
    }

    /// The services that run, in configuration order.
    public var services: [ServiceRuntime] {
        self.table.withLock { table in table.running.map { table.all[$0] } }
    }

    /// Every service run since the start, retired ones included, by index.
    var allServices: [ServiceRuntime] {
        self.table.withLock { $0.all }
    }

    /// Moves with every reload (which may change the services, their routes or the trusted proxies).
    var generation: Int {
        self.generationCounter.load(ordering: .relaxed)
    }

    /// The table and the generation it is of, read together.
    func snapshot() -> (table: Table, generation: Int) {
        self.table.withLock { ($0, self.generationCounter.load(ordering: .relaxed)) }
    }

    /// The running service named `name`.
    public func service(named name: String) -> ServiceRuntime? {
        self.services.first { $0.settings.name == name }
    }

    /// The index of the running service named `name`, as requests know it.
    func index(ofService name: String) -> Int? {
        self.table.withLock { table in table.running.first { table.all[$0].settings.name == name } }
    }

    /// The service a request without a route goes to: the one without a route, or the only one.
    func defaultService() -> ServiceRuntime? {
        self.table.withLock { table in
            if table.running.count == 1 { return table.all[table.running[0]] }
            return table.running.map { table.all[$0] }.first { Table.configured($0, in: table.configuration).route == nil }
        }
    }

    /// Runs `configuration`'s services, routes, trusted proxies and yield interval from now, and takes
    /// its access log as the one written to (the listeners and admin are the caller's; see
    /// ``serving(listeners:admin:)``): services it names that do not run start (with the backends and
    /// settings of the file), and running ones it no longer names are retired. Returns the services
    /// started and retired; every loop takes up the new table with its next request.
    func rearrange(_ configuration: ProxyConfiguration) -> (started: [String], retired: [ServiceRuntime]) {
        self.table.withLock { table in
            var running: [Int] = []
            var started: [String] = []
            var named: [String: Int] = [:]
            for index in table.running { named[table.all[index].settings.name] = index }
            for service in configuration.services {
                if let index = named.removeValue(forKey: service.name) {
                    running.append(index)
                } else {
                    table.all.append(ServiceRuntime(service, metrics: self.metrics, recorder: self.recorder))
                    running.append(table.all.count - 1)
                    started.append(service.name)
                }
            }
            var retired: [ServiceRuntime] = []
            for (_, index) in named.sorted(by: { $0.value < $1.value }) { retired.append(table.all[index]) }
            var runs = configuration
            runs.listeners = table.configuration.listeners
            runs.admin = table.configuration.admin
            runs.threads = table.configuration.threads
            table = Table(configuration: runs, all: table.all, running: running)
            // One snapshot per loop and reload, whatever changed.
            self.generationCounter.add(1, ordering: .releasing)
            return (started, retired)
        }
    }

    /// Notes what the proxy listens as after a reload: what of the file's listeners and admin section
    /// it could bind.
    func serving(listeners: [ProxyConfiguration.Listener], admin: ProxyConfiguration.Admin) {
        self.table.withLock { table in
            table.configuration.listeners = listeners
            table.configuration.admin = admin
        }
    }

    /// How long a client connection may sit idle between requests: the longest `client-idle` of the
    /// services (which service a connection's next request is for is not known until it comes).
    var clientIdleNanos: UInt64 {
        self.clientIdle.load(ordering: .relaxed)
    }

    private static func clientIdleNanos(_ timeouts: [Service.Timeouts]) -> UInt64 {
        UInt64(max(1, (timeouts.map(\.clientIdle).max() ?? .seconds(60)).nanoseconds))
    }

    /// Takes up the services' client-idle timeouts now (after a reload): connections go by the new
    /// longest from the end of their next request.
    func retimeClientIdle() {
        self.clientIdle.store(Self.clientIdleNanos(self.services.map(\.tunables.timeouts)), ordering: .relaxed)
    }
}

/// What a reload may change in a running service: every setting but its name, its route and its
/// backends (which change by their own calls). Each event loop, and the health checker, take them up
/// with the backend list when ``ServiceRuntime/version`` moves.
public struct ServiceTunables: Sendable, Hashable {
    public var algorithm: Algorithm
    public var parameters: PickerParameters
    public var hashKey: Service.HashKey
    public var retries: RetryPolicy
    /// The share of requests in flight that may be retries, on each loop (counts in flight stay).
    public var retryBudget: Service.RetryBudgetSettings
    /// The timeouts; of them, `clientIdle` counts across services (see ``ProxyRuntime``).
    public var timeouts: Service.Timeouts
    /// Active health checks, if any.
    public var health: Service.HealthCheck?
    /// Passive outlier ejection, if any (what it has counted stays while it stays on).
    public var outlierDetection: OutlierDetectionConfiguration?
    /// The ramp of a backend that joins or recovers (a ramp under way goes on by the new one).
    public var slowStart: SlowStart
    /// Requests in flight and waiting per backend (those already in flight or waiting keep their place).
    public var limits: Service.Limits
    /// Idle connections kept per backend and loop.
    public var pool: Service.PoolSettings

    public init(_ service: Service) {
        self.algorithm = service.algorithm
        self.parameters = service.parameters
        self.hashKey = service.hashKey
        self.retries = service.retries
        self.retryBudget = service.retryBudget
        self.timeouts = service.timeouts
        self.health = service.health
        self.outlierDetection = service.outlierDetection
        self.slowStart = service.slowStart
        self.limits = service.limits
        self.pool = service.pool
    }

    /// `service` with these tunables in place of its own.
    func applied(to service: Service) -> Service {
        var service = service
        service.algorithm = self.algorithm
        service.parameters = self.parameters
        service.hashKey = self.hashKey
        service.retries = self.retries
        service.retryBudget = self.retryBudget
        service.timeouts = self.timeouts
        service.health = self.health
        service.outlierDetection = self.outlierDetection
        service.slowStart = self.slowStart
        service.limits = self.limits
        service.pool = self.pool
        return service
    }

    /// What differs from `old`, in words ("algorithm least-connections", "timeouts", …).
    func changes(from old: ServiceTunables) -> [String] {
        var changes: [String] = []
        if self.algorithm != old.algorithm { changes.append("algorithm \(self.algorithm.name)") }
        if self.parameters != old.parameters { changes.append("algorithm parameters") }
        if self.hashKey != old.hashKey { changes.append("hash key") }
        if self.retries != old.retries { changes.append("retries") }
        if self.retryBudget != old.retryBudget { changes.append("retry budget") }
        if self.timeouts != old.timeouts { changes.append("timeouts") }
        if self.health != old.health { changes.append(self.health == nil ? "health checks off" : "health") }
        if self.outlierDetection != old.outlierDetection {
            changes.append(self.outlierDetection == nil ? "outlier detection off" : "outlier detection")
        }
        if self.slowStart != old.slowStart { changes.append("slow-start") }
        if self.limits != old.limits { changes.append("limits") }
        if self.pool != old.pool { changes.append("pool") }
        return changes
    }
}

/// One service at run time: its settings and its backends, which the admin API may change while it
/// runs. Each event loop keeps its own copy of the backend list, the tunables and the picker, and
/// refreshes them when ``version`` moves (one relaxed load per request).
public final class ServiceRuntime: Sendable {
    /// The service as configured at start. Its backends and ``tunables`` may have changed since.
    public let settings: Service
    private let members: Mutex<[BackendRuntime]>
    private let tunablesNow: Mutex<ServiceTunables>
    private let versionCounter = Atomic<Int>(0)
    private let registry: ProxyMetrics
    let metrics: ServiceMetrics
    let recorder: ProxyRecorder?
    /// Passive outlier detection over the backends, when the service has it.
    let outliers: Mutex<OutlierDetector<ObjectIdentifier>?>
    private let outlierSwitch: Atomic<Bool>

    init(_ settings: Service, metrics: ProxyMetrics, recorder: ProxyRecorder? = nil) {
        self.settings = settings
        self.tunablesNow = Mutex(ServiceTunables(settings))
        self.registry = metrics
        self.recorder = recorder
        self.metrics = metrics.service(settings.name)
        let members = settings.backends.map {
            BackendRuntime(
                spec: $0,
                state: BackendState(name: $0.name),
                metrics: metrics.backend(service: settings.name, name: $0.name),
                tracking: BackendTracking(),
                limiter: BackendLimiter(settings.limits)
            )
        }
        self.members = Mutex(members)
        self.outliers = Mutex(
            settings.outlierDetection.map { configuration in
                var detector = OutlierDetector<ObjectIdentifier>(configuration: configuration)
                let now = Instant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))
                for member in members { detector.backendAdded(ObjectIdentifier(member.state), now: now) }
                return detector
            }
        )
        self.outlierSwitch = Atomic(settings.outlierDetection != nil)
    }

    /// Whether the service ejects outliers now (a reload may turn it on or off).
    var detectsOutliers: Bool {
        self.outlierSwitch.load(ordering: .relaxed)
    }

    /// Moves ``version`` so that every loop rebuilds its picker.
    func changed() {
        self.versionCounter.add(1, ordering: .releasing)
    }

    /// The backends now, in the order pickers see them.
    public var backends: [BackendRuntime] {
        self.members.withLock { $0 }
    }

    /// Moves whenever the backend list, a weight or the tunables change.
    public var version: Int {
        self.versionCounter.load(ordering: .relaxed)
    }

    /// The backends and tunables, and the version they are of, read together.
    func snapshot() -> (backends: [BackendRuntime], tunables: ServiceTunables, version: Int) {
        self.members.withLock { members in
            (members, self.tunablesNow.withLock { $0 }, self.versionCounter.load(ordering: .relaxed))
        }
    }

    /// How the service picks and treats requests now (a reload may have changed them).
    public var tunables: ServiceTunables {
        self.tunablesNow.withLock { $0 }
    }

    /// Takes up `tunables`; every loop does with its next request, each backend's limiter at once, and
    /// the outlier detector at once (turned off, it readmits the backends it had ejected). Returns what
    /// changed, in words.
    @discardableResult
    public func retune(_ tunables: ServiceTunables) -> [String] {
        let (changes, old, members) = self.members.withLock { members in
            let old = self.tunablesNow.withLock { current in
                defer { current = tunables }
                return current
            }
            let changes = tunables.changes(from: old)
            if !changes.isEmpty { self.versionCounter.add(1, ordering: .releasing) }
            return (changes, old, members)
        }
        if tunables.limits != old.limits {
            for member in members { member.limiter.update(tunables.limits) }
        }
        if tunables.outlierDetection != old.outlierDetection { self.redetect(tunables.outlierDetection, members: members) }
        return changes
    }

    /// Runs outlier detection by `configuration` from now: turned on, over `members` as admitted now;
    /// changed, with what it has counted; turned off, with every backend it had ejected readmitted.
    private func redetect(_ configuration: OutlierDetectionConfiguration?, members: [BackendRuntime]) {
        let now = Instant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))
        self.outliers.withLock { detector in
            switch (detector, configuration) {
            case (nil, let configuration?):
                var fresh = OutlierDetector<ObjectIdentifier>(configuration: configuration)
                for member in members { fresh.backendAdded(ObjectIdentifier(member.state), now: now) }
                detector = fresh
            case (_?, let configuration?):
                detector!.configuration = configuration
            case (_, nil):
                detector = nil
            }
            self.outlierSwitch.store(configuration != nil, ordering: .relaxed)
        }
        guard configuration == nil else { return }
        for member in members where member.state.isEjected {
            member.tracking.failing.store(false, ordering: .relaxed)
            member.state.setEjected(false)
            self.recorder?.event("readmitted", member.spec.name, ["service": self.settings.name, "why": "outlier detection off"])
            self.startRamp(member, now: now)
        }
    }

    /// Why a change to the backend list was refused.
    public enum MembershipError: Error, Equatable, CustomStringConvertible {
        case duplicateName(String)
        case duplicateAddress(String)
        case unknownBackend(String)
        case badWeight(Int)

        public var description: String {
            switch self {
            case .duplicateName(let name): "service already has a backend named \(name)"
            case .duplicateAddress(let address): "service already has a backend at \(address)"
            case .unknownBackend(let name): "no backend named \(name)"
            case .badWeight(let weight): "weight \(weight) is out of range (1...1000000)"
            }
        }
    }

    /// Adds a backend; it starts healthy when the service has no health check, and down until its
    /// first passed probe when it has one.
    @discardableResult
    public func add(_ spec: BackendSpec) throws(MembershipError) -> BackendRuntime {
        guard (1...1_000_000).contains(spec.weight) else { throw .badWeight(spec.weight) }
        let problem: MembershipError? = self.members.withLock { members in
            if members.contains(where: { $0.spec.name == spec.name }) { return .duplicateName(spec.name) }
            if members.contains(where: { $0.spec.address == spec.address }) { return .duplicateAddress(spec.address.description) }
            members.append(
                BackendRuntime(
                    spec: spec,
                    state: BackendState(name: spec.name, healthy: self.tunablesNow.withLock { $0.health == nil }),
                    metrics: self.registry.backend(service: self.settings.name, name: spec.name),
                    tracking: BackendTracking(),
                    limiter: BackendLimiter(self.tunablesNow.withLock { $0.limits })
                )
            )
            self.versionCounter.add(1, ordering: .releasing)
            return nil
        }
        if let problem { throw problem }
        let added = self.backend(named: spec.name)!
        let now = Instant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))
        self.outliers.withLock { $0?.backendAdded(ObjectIdentifier(added.state), now: now) }
        if added.state.isAvailable { self.startRamp(added, now: now) }
        return added
    }

    /// Removes the backend named `name`; requests in flight to it finish.
    @discardableResult
    public func remove(named name: String) throws(MembershipError) -> BackendRuntime {
        let removed: BackendRuntime? = self.members.withLock { members in
            guard let index = members.firstIndex(where: { $0.spec.name == name }) else { return nil }
            self.versionCounter.add(1, ordering: .releasing)
            return members.remove(at: index)
        }
        guard let removed else { throw .unknownBackend(name) }
        self.outliers.withLock { $0?.backendRemoved(ObjectIdentifier(removed.state)) }
        self.registry.remove(removed.metrics)
        return removed
    }

    /// Sets the weight of the backend named `name`.
    public func setWeight(_ weight: Int, of name: String) throws(MembershipError) {
        guard (1...1_000_000).contains(weight) else { throw .badWeight(weight) }
        let found: Bool = self.members.withLock { members in
            guard let index = members.firstIndex(where: { $0.spec.name == name }) else { return false }
            members[index].spec.weight = weight
            self.versionCounter.add(1, ordering: .releasing)
            return true
        }
        if !found { throw .unknownBackend(name) }
    }

    /// The service was retired: `GET /metrics` no longer shows it.
    func forgetMetrics() {
        for member in self.backends { self.registry.remove(member.metrics) }
        self.registry.remove(self.metrics)
    }

    /// The backend named `name`.
    public func backend(named name: String) -> BackendRuntime? {
        self.members.withLock { $0.first { $0.spec.name == name } }
    }
}

/// A backend at run time: what it is, and its shared state.
public struct BackendRuntime: Sendable {
    public internal(set) var spec: BackendSpec
    public let state: BackendState
    let metrics: BackendMetrics
    let tracking: BackendTracking
    let limiter: BackendLimiter
}
