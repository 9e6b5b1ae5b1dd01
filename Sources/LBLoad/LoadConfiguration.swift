public import LBCore

/// Everything a load run is started with (`loadgen` flags, or a scenario's `load:` section).
public struct LoadConfiguration: Sendable {
    /// Where requests go: an `http://host:port/path` URL, split.
    public struct Target: Sendable, Hashable {
        /// The host to connect to.
        public var host: String
        /// The port to connect to.
        public var port: Int
        /// The request target: path and query.
        public var path: String

        /// A target of `host`, `port` and `path`.
        public init(host: String, port: Int, path: String) {
            self.host = host
            self.port = port
            self.path = path
        }

        /// The `Host` header value.
        public var hostHeader: String {
            let host = self.host.contains(":") ? "[\(self.host)]" : self.host
            return self.port == 80 ? host : "\(host):\(self.port)"
        }
    }

    /// How fast requests are sent.
    public enum Pacing: Sendable, Hashable {
        /// Open loop: each client sends at `ratePerClient` requests per second, whatever the responses do.
        case openLoop(ratePerClient: Double, arrival: ArrivalProcess)
        /// Closed loop (wrk's model): each of `connections` sends its next request when the previous
        /// response is complete.
        case closedLoop(connections: Int)
    }

    /// Where requests go.
    public var target: Target
    /// Simulated clients, each with its own synthetic address (``ClientAddresses``).
    public var clients: Int
    /// How fast requests are sent.
    public var pacing: Pacing
    /// How long to send for; with `requests`, whichever ends first.
    public var duration: Duration?
    /// How many requests to send in all; with `duration`, whichever ends first.
    public var requests: Int?
    /// Requests due in this first stretch are sent and recorded but left out of the summary.
    public var warmup: Duration
    /// The HTTP method.
    public var method: String
    /// Extra request headers.
    public var headers: [(name: String, value: String)]
    /// The request body.
    public var body: [UInt8]
    /// How long a request may take before it counts as timed out.
    public var timeout: Duration
    /// Keys for hash algorithms, sent in `X-LBLab-Key`; `nil` sends none.
    public var keys: ZipfKeys?
    /// Seeds the schedule and the keys.
    public var seed: UInt64
    /// The most connections open at once; requests beyond wait for one, and that is reported.
    public var maxConnections: Int
    /// Event loop threads.
    public var threads: Int
    /// Whether each request is a message over a WebSocket (`ws://` targets): every client (open loop)
    /// or connection (closed loop) opens one WebSocket to ``target`` and keeps it, and a request ends
    /// with its echo. With a load balancer in front, a backend is chosen per connection, not per
    /// request, as for any long-lived connection.
    public var webSocket: Bool

    /// A configuration with the given target, clients and pacing, and defaults for the rest.
    public init(target: Target, clients: Int, pacing: Pacing) {
        self.target = target
        self.clients = clients
        self.pacing = pacing
        self.duration = .seconds(10)
        self.requests = nil
        self.warmup = .zero
        self.method = "GET"
        self.headers = []
        self.body = []
        self.timeout = .seconds(10)
        self.keys = nil
        self.seed = 0
        self.maxConnections = Self.defaultMaxConnections(clients: clients, pacing: pacing)
        self.threads = 1
        self.webSocket = false
    }

    /// Enough connections for requests that last up to one second at the asked rate, at least one per
    /// client and 64, at most 10,000.
    public static func defaultMaxConnections(clients: Int, pacing: Pacing) -> Int {
        switch pacing {
        case .openLoop(let rate, _):
            let perSecond = (rate * Double(clients)).rounded(.up)
            return Int(min(10_000, max(64, Double(clients), perSecond)))
        case .closedLoop(let connections):
            return connections
        }
    }

    /// The most connections open at once: ``maxConnections``, but over WebSockets in the open loop one
    /// per client, which each keeps for the run.
    public var connectionLimit: Int {
        if self.webSocket, case .openLoop = self.pacing { return self.clients }
        return self.maxConnections
    }

    /// The total rate asked for, in requests per second (open loop only).
    public var totalRate: Double? {
        if case .openLoop(let rate, _) = self.pacing { return rate * Double(self.clients) }
        return nil
    }
}
