public import LBCore

/// What `lbctl proxy` runs (DESIGN §6): its listeners, the admin listener, and the services it routes
/// to, each with its own algorithm, backends and policies. Read from `config.yml` by
/// ``ProxyConfiguration/load(path:)`` or built from flags; ``validate()`` checks what no single field
/// can (duplicate names, a second default service, routes no request can reach).
public struct ProxyConfiguration: Sendable, Hashable {
    /// Where clients connect.
    public var listeners: [Listener]
    /// The admin API's listener and credentials.
    public var admin: Admin
    /// Event loops (`0`: one per core).
    public var threads: Int
    /// Networks whose `X-Forwarded-For` is believed; from anywhere else the socket's address is the
    /// client's, and any `X-Forwarded-For` it sent is replaced.
    public var trustedProxies: [AddressRange]
    /// A file of JSON lines, one per request, or `nil`.
    public var accessLog: String?
    /// How long SIGTERM waits for requests in flight before closing their connections.
    public var shutdownGrace: Duration
    /// How often at most an event loop, having written a tick's requests and responses, gives its core
    /// to whatever else is runnable there (`sched_yield`); `.zero`: never. A busy loop otherwise keeps
    /// its core for the scheduler's whole slice, and a client or backend its writes woke onto that core
    /// waits that long to read them. Where nothing else waits for the core it costs one system call
    /// per interval.
    public var yieldInterval: Duration
    /// The values ``yieldInterval`` may take.
    public static let yieldIntervals: ClosedRange<Duration> = .zero ... .seconds(1)
    /// The services, in the order routes are tried.
    public var services: [Service]

    /// A configuration of `services` behind one HTTP listener.
    public init(listen: HostPort, services: [Service]) {
        self.listeners = [Listener(address: listen)]
        self.admin = Admin()
        self.threads = 0
        self.trustedProxies = AddressRange.loopback
        self.accessLog = nil
        self.shutdownGrace = .seconds(10)
        self.yieldInterval = .milliseconds(1)
        self.services = services
    }

    /// A client-facing listener.
    public struct Listener: Sendable, Hashable {
        /// What it forwards.
        public enum Mode: String, Sendable, Hashable, CaseIterable {
            /// HTTP/1.1 requests, routed by Host and path to a service.
            case http
            /// TCP connections, each forwarded whole to a backend of one service.
            case tcp
        }

        /// The address it listens on.
        public var address: HostPort
        /// HTTP or TCP.
        public var mode: Mode
        /// The service a TCP listener forwards to (HTTP listeners route by the request).
        public var service: String?

        /// A listener on `address`.
        public init(address: HostPort, mode: Mode = .http, service: String? = nil) {
            self.address = address
            self.mode = mode
            self.service = service
        }
    }

    /// The admin API's listener.
    public struct Admin: Sendable, Hashable {
        /// Where it listens: loopback by default.
        public var address: HostPort
        /// The environment variable holding the bearer token the API requires; no token is required
        /// when it is unset or empty.
        public var tokenEnvironmentVariable: String

        /// Loopback port 9900, token from `LBLAB_ADMIN_TOKEN`.
        public init(address: HostPort = HostPort(host: "127.0.0.1", port: 9900), tokenEnvironmentVariable: String = "LBLAB_ADMIN_TOKEN") {
            self.address = address
            self.tokenEnvironmentVariable = tokenEnvironmentVariable
        }

        /// What to tell the operator when the API listens beyond loopback and `token` (the value of
        /// ``tokenEnvironmentVariable``, if set) requires none: anyone who reaches the address can
        /// change the backends. `nil` when it listens on loopback only, or a token is required.
        public func exposureWarning(token: String?) -> String? {
            guard !self.address.isLoopback, token?.isEmpty ?? true else { return nil }
            return "warning: the admin API listens on \(self.address) without a token: whoever reaches it can add, drain and remove backends; set \(self.tokenEnvironmentVariable)"
        }
    }
}

extension ProxyConfiguration {
    /// What to tell the operator about each `least-resources` service: where its figures come from, and
    /// what it does without them, since no figure is measured by the proxy itself.
    public var resourceFigureNotes: [String] {
        self.services.filter { $0.algorithm == .leastResources }.map { service in
            "service \(service.name): least-resources balances on resource figures sent to PUT /backends/NAME/usage "
                + "on the admin API (\(self.admin.address)); a backend without a figure from the last "
                + "\(GoDuration.format(service.parameters.resourceMaxAge)) counts as fully used, so until figures arrive "
                + "it balances as least-connections"
        }
    }
}

/// One service: the requests it takes, its backends, and how it spreads and protects them.
public struct Service: Sendable, Hashable {
    /// Its name, unique in the configuration.
    public var name: String
    /// The requests routed to it; a service without one is the default.
    public var route: Route?
    /// The algorithm that picks a backend, and its parameters.
    public var algorithm: Algorithm
    /// The algorithm's parameters (only those it uses matter).
    public var parameters: PickerParameters
    /// What a hash algorithm hashes.
    public var hashKey: HashKey
    /// Its backends.
    public var backends: [BackendSpec]
    /// Active health checks, or `nil` for none.
    public var health: HealthCheck?
    /// Retries of failed attempts on other backends.
    public var retries: RetryPolicy
    /// The retry budget: retries in flight as a share of requests in flight, with a floor.
    public var retryBudget: RetryBudgetSettings
    /// Timeouts.
    public var timeouts: Timeouts
    /// Passive outlier ejection, or `nil` for none.
    public var outlierDetection: OutlierDetectionConfiguration?
    /// The ramp of a backend that joins or recovers.
    public var slowStart: SlowStart
    /// Connections per backend, and the queue beyond them.
    public var limits: Limits
    /// Idle upstream connections kept for reuse.
    public var pool: PoolSettings

    /// A service called `name` over `backends`, with every policy at its default.
    public init(name: String, algorithm: Algorithm = .roundRobin, backends: [BackendSpec]) {
        self.name = name
        self.route = nil
        self.algorithm = algorithm
        self.parameters = PickerParameters()
        self.hashKey = .clientIP
        self.backends = backends
        self.health = nil
        self.retries = RetryPolicy()
        self.retryBudget = RetryBudgetSettings()
        self.timeouts = Timeouts()
        self.outlierDetection = nil
        self.slowStart = .off
        self.limits = Limits()
        self.pool = PoolSettings()
    }

    /// Which requests a service takes: any of `hosts` (none: any host) and a path under `pathPrefix`.
    public struct Route: Sendable, Hashable {
        /// Host names, compared without case and without the port; `*.example.test` matches any
        /// subdomain.
        public var hosts: [String]
        /// The path must start with this.
        public var pathPrefix: String

        /// A route on `hosts` and `pathPrefix`.
        public init(hosts: [String] = [], pathPrefix: String = "/") {
            self.hosts = hosts
            self.pathPrefix = pathPrefix
        }
    }

    /// What hash-based algorithms hash.
    public enum HashKey: Sendable, Hashable {
        /// The client's address (the socket's, or a trusted `X-Forwarded-For`).
        case clientIP
        /// A request header's value (`X-LBLab-Key` for the load generator's keys).
        case header(String)
        /// The request path.
        case path
        /// A cookie's value.
        case cookie(String)
    }

    /// An active health check.
    public struct HealthCheck: Sendable, Hashable {
        /// How a backend is probed.
        public enum Probe: Sendable, Hashable {
            /// `GET path`, healthy when the status is `expectStatus`.
            case http(path: String, expectStatus: Int)
            /// A TCP connect.
            case tcp
        }

        /// How a backend is probed.
        public var probe: Probe
        /// Interval, timeout, rise and fall.
        public var timing: HealthCheckConfiguration

        /// A probe with its timing.
        public init(probe: Probe, timing: HealthCheckConfiguration = HealthCheckConfiguration()) {
            self.probe = probe
            self.timing = timing
        }
    }

    /// The retry budget's settings.
    public struct RetryBudgetSettings: Sendable, Hashable {
        /// The share of in-flight requests that may be retries.
        public var share: Double
        /// Retries allowed in flight whatever the share says.
        public var minimumConcurrency: Int

        /// Envoy's defaults: 20%, at least 3.
        public init(share: Double = 0.2, minimumConcurrency: Int = 3) {
            self.share = share
            self.minimumConcurrency = minimumConcurrency
        }
    }

    /// The timeouts of a request's life.
    public struct Timeouts: Sendable, Hashable {
        /// To open a connection to a backend.
        public var connect: Duration
        /// From the request sent to the backend to its response header.
        public var responseHeader: Duration
        /// The whole request, retries included.
        public var request: Duration
        /// A client connection with no request in flight is closed after this.
        public var clientIdle: Duration
        /// A connection that switched protocols (a WebSocket) is closed, both sides, after this long
        /// with no bytes either way (HAProxy's `timeout tunnel`); ``request`` no longer applies to it.
        public var tunnel: Duration

        /// 1 s to connect, 15 s to a response header, 60 s per request, 60 s idle, 1 h idle in a tunnel.
        public init(
            connect: Duration = .seconds(1),
            responseHeader: Duration = .seconds(15),
            request: Duration = .seconds(60),
            clientIdle: Duration = .seconds(60),
            tunnel: Duration = .seconds(3600)
        ) {
            self.connect = connect
            self.responseHeader = responseHeader
            self.request = request
            self.clientIdle = clientIdle
            self.tunnel = tunnel
        }
    }

    /// Connections to each backend, and the queue beyond them.
    public struct Limits: Sendable, Hashable {
        /// Requests in flight to one backend at most (HAProxy's `maxconn`).
        public var maxConnections: Int
        /// Requests waiting for a backend's connection at most; beyond it, 503.
        public var maxQueued: Int
        /// How long a request may wait in that queue before it gets a 503.
        public var queueTimeout: Duration

        /// 10,000 connections, 1,000 queued for at most 1 s.
        public init(maxConnections: Int = 10_000, maxQueued: Int = 1_000, queueTimeout: Duration = .seconds(1)) {
            self.maxConnections = maxConnections
            self.maxQueued = maxQueued
            self.queueTimeout = queueTimeout
        }
    }

    /// The upstream connection pool of each backend, per event loop.
    public struct PoolSettings: Sendable, Hashable {
        /// Idle connections kept per backend and event loop (a burst's extra ones until the next
        /// second's trim); 0 opens a connection per request and closes it after.
        public var maxIdle: Int
        /// An idle connection unused this long is closed.
        public var idleTimeout: Duration

        /// 64 idle connections, closed after 60 s unused.
        public init(maxIdle: Int = 64, idleTimeout: Duration = .seconds(60)) {
            self.maxIdle = maxIdle
            self.idleTimeout = idleTimeout
        }
    }
}

/// A backend of a service.
public struct BackendSpec: Sendable, Hashable {
    /// Its name, unique in the service (shown in `X-LBLab-Backend`, the metrics and the records).
    public var name: String
    /// Where it listens.
    public var address: HostPort
    /// Its weight (weighted algorithms, least-connections per weight).
    public var weight: Int

    /// A backend at `address`, named after it unless `name` is given.
    public init(name: String? = nil, address: HostPort, weight: Int = 1) {
        self.name = name ?? address.description
        self.address = address
        self.weight = weight
    }
}
