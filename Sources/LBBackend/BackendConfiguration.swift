public import LBCore

/// Everything `lbctl backend` is started with.
public struct BackendConfiguration: Sendable, Hashable {
    /// The backend's name, sent in `X-LBLab-Backend` on every response.
    public var name: String
    /// Where it listens.
    public var listen: HostPort
    /// What it does per request; changeable at run time.
    public var settings: BackendSettings
    /// Requests served at once; more wait in a queue. `nil` for no limit.
    public var capacity: Int?
    /// Requests that may wait when all places are taken; beyond it, 503. `nil` for no limit.
    public var queueLimit: Int?
    /// The path of the health check answer.
    public var healthPath: String
    /// The size of each successful response body, in bytes.
    public var responseBytes: Int
    /// Event loop threads (and CPU-work threads).
    public var threads: Int
    /// Seeds latency and error draws.
    public var seed: UInt64
    /// Answer each request with its own body instead of the fixed one, in chunks when it came chunked:
    /// for tests of what a proxy passes through (at most ``maxEchoBytes``; more is cut off).
    public var echo = false
    /// The longest body echoed.
    public static let maxEchoBytes = 64 << 20
    /// A path answered as a WebSocket (RFC 6455) that echoes every message, for experiments with
    /// long-lived connections through a proxy; `nil` for none.
    public var webSocketPath: String?

    /// A backend called `name` on `listen` with the given behaviour and defaults for the rest.
    public init(
        name: String,
        listen: HostPort,
        settings: BackendSettings = BackendSettings(),
        capacity: Int? = nil,
        queueLimit: Int? = nil,
        healthPath: String = "/health",
        responseBytes: Int = 2,
        threads: Int = 1,
        seed: UInt64 = 0
    ) {
        self.name = name
        self.listen = listen
        self.settings = settings
        self.capacity = capacity
        self.queueLimit = queueLimit
        self.healthPath = healthPath
        self.responseBytes = responseBytes
        self.threads = threads
        self.seed = seed
    }

    /// The path prefix of the control endpoint, answered only to loopback clients.
    public static let controlPath = "/_lblab/state"
}
