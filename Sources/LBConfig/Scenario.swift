public import LBCore

/// An experiment (`scenarios/NAME.yml`, DESIGN §6): the question it asks, the algorithms it compares,
/// the backends and the load, a fault timeline, the proxy settings, and the outcome it expects.
///
/// A study runs every entry of ``algorithms`` ``repeats`` times; each run is one `runs` row. Every
/// field is validated by ``load(path:)`` before anything starts, with errors naming file, line and
/// field.
public struct Scenario: Sendable {
    /// The scenario's name (its file name without `.yml` unless the file says otherwise).
    public var name: String
    /// The question the experiment answers, in one sentence.
    public var question: String
    /// The seed every random choice derives from (schedule, keys, backends' draws).
    public var seed: UInt64
    /// How long the load runs, warm-up included.
    public var duration: Duration
    /// The first stretch of the load, sent and recorded but left out of the figures.
    public var warmup: Duration
    /// Runs of each algorithm.
    public var repeats: Int
    /// The algorithms compared, each under a label unique in the scenario.
    public var algorithms: [AlgorithmUnderTest]
    /// The backends, in order; their names are unique.
    public var backends: [ScenarioBackend]
    /// The load.
    public var load: ScenarioLoad
    /// Faults and changes at given times after the load starts, in time order.
    public var timeline: [TimelineStep]
    /// What the proxy's service is set up with, besides its algorithm and backends.
    public var proxy: ProxySettings
    /// The outcomes the scenario exists to show, checked after the runs.
    public var expectations: [ExpectedOutcome]
    /// How often resources are sampled.
    public var sampleInterval: Duration
    /// The most backends a scenario may have: `lbctl sim` runs them all.
    public static let simulatedBackendLimit = 100_000
    /// The most backends a real run starts (`lbctl run`: a process each).
    public static let realBackendLimit = 256
    /// The delays `lbctl sim` puts between client, proxy and backends (`sim:`).
    public var simulation = SimulationModel()
    /// Its `slo:`, if it has one: the service level whose highest load a sweep of the load finds.
    public var serviceLevel: ServiceLevel?
    /// Its `sweep:`, if it has one: the points a study runs it at.
    public var sweep: Sweep?
    /// The sweep point this scenario is at (``at(_:capacity:)``), if any.
    public var point: SweepPoint?
    /// The fleet's capacity the point's shares of capacity were taken of, if any.
    public var capacity: Double?
    /// The file it was read from.
    public var file: String
    /// The file's text, recorded with every run.
    public var text: String

    /// One entry of the matrix: an algorithm with its parameters, under a label (`consistent-hash`, or
    /// `chwbl-unbounded` for the same algorithm without a load bound).
    public struct AlgorithmUnderTest: Sendable, Hashable {
        /// How runs, reports and `expect:` name it.
        public var label: String
        /// The algorithm.
        public var algorithm: Algorithm
        /// Its parameters as YAML (`nil`: defaults), copied into the proxy's configuration.
        public var parametersYAML: String?

        public init(label: String, algorithm: Algorithm, parametersYAML: String?) {
            self.label = label
            self.algorithm = algorithm
            self.parametersYAML = parametersYAML
        }
    }

    /// The proxy's side of the experiment: a `config.yml` service fragment (health, retries, timeouts,
    /// outlier detection, slow start, limits, pool, hash key) and its event loops.
    public struct ProxySettings: Sendable {
        /// The service keys as YAML, copied into the proxy's configuration.
        public var serviceYAML: String
        /// The proxy's event loops.
        public var threads: Int
    }
}

/// One synthetic backend of a scenario: how it behaves (`lbctl backend` settings), its container limits
/// and its weight at the proxy.
public struct ScenarioBackend: Sendable, Hashable {
    /// Its name, as `X-LBLab-Backend` carries it.
    public var name: String
    /// Its latency per request.
    public var latency: LatencyModel
    /// CPU time burnt per request.
    public var cpuWork: Duration
    /// Share of requests answered 500.
    public var errors: Double
    /// Requests served at once (`nil`: no limit).
    public var capacity: Int?
    /// Requests that may wait beyond the capacity (`nil`: no limit).
    public var queue: Int?
    /// Its weight at the proxy.
    public var weight: Int
    /// CPU limit in cores (`0.5`: half of one core), or `nil` for none.
    public var cpuLimit: Double?
    /// Memory limit in bytes, or `nil` for none.
    public var memoryLimit: Int64?
    /// Whether the proxy has it from the start; one that is not joins with a timeline `add`.
    public var inService: Bool
    /// Its event loop threads.
    public var threads: Int

    /// A backend called `name` with the defaults: no latency, no errors, no limits, weight 1.
    public init(name: String) {
        self.name = name
        self.latency = .fixed(.zero)
        self.cpuWork = .zero
        self.errors = 0
        self.capacity = nil
        self.queue = nil
        self.weight = 1
        self.cpuLimit = nil
        self.memoryLimit = nil
        self.inService = true
        self.threads = 1
    }
}

/// The load of a scenario: clients, rate, arrival process, keys; the load generator's settings.
public struct ScenarioLoad: Sendable, Hashable {
    /// Simulated clients, each with its own synthetic address (``ClientAddresses``).
    public var clients: Int
    /// Requests per second per client.
    public var ratePerClient: Double
    /// Constant or Poisson arrivals.
    public var arrival: ArrivalProcess
    /// Keys in `X-LBLab-Key` (count and Zipf exponent), or `nil` for none.
    public var keyCount: Int?
    /// The Zipf exponent of the keys (0: uniform).
    public var zipf: Double
    /// The request path.
    public var path: String
    /// The HTTP method.
    public var method: String
    /// How long a request may take.
    public var timeout: Duration
    /// The load generator's event loops.
    public var threads: Int
    /// Whether each request is a WebSocket message to ``path`` (`websocket: true`): each client opens
    /// one WebSocket and keeps it, and the backends echo every message.
    public var webSocket = false

    /// The total rate asked for.
    public var totalRate: Double { self.ratePerClient * Double(self.clients) }

    /// The path every backend answers as a WebSocket, when the load is WebSocket messages: ``path``
    /// without its query.
    public var webSocketPath: String? {
        self.webSocket ? String(self.path.prefix { $0 != "?" }) : nil
    }
}

/// One step of a fault timeline: at a time after the load starts, an action on a backend.
public struct TimelineStep: Sendable, Hashable {
    /// When, from the start of the load.
    public var at: Duration
    /// What happens.
    public var action: Action
    /// The line of the step in the scenario file.
    public var line: Int

    /// What a step does, and to which backend.
    public enum Action: Sendable, Hashable {
        /// SIGKILL the backend's process.
        case kill(String)
        /// SIGSTOP it (it holds its connections and answers nothing).
        case stop(String)
        /// SIGCONT a stopped backend.
        case resume(String)
        /// Start a killed backend again, on the same address.
        case restart(String)
        /// Change its latency model (control endpoint).
        case slow(String, LatencyModel)
        /// Change its share of 500s (control endpoint).
        case errors(String, Double)
        /// Make its health path answer 503 (`false`) or 200 (`true`) (control endpoint).
        case health(String, Bool)
        /// Set its weight at the proxy (admin API).
        case weight(String, Int)
        /// Add it to the proxy's service (admin API); it must be `in-service: false`.
        case add(String)
        /// Remove it from the service (admin API).
        case remove(String)
        /// Stop sending it new requests (admin API).
        case drain(String)

        /// The backend it acts on.
        public var backend: String {
            switch self {
            case .kill(let name), .stop(let name), .resume(let name), .restart(let name), .slow(let name, _),
                .errors(let name, _), .health(let name, _), .weight(let name, _), .add(let name), .remove(let name),
                .drain(let name):
                name
            }
        }

        /// The action's name, as `events.kind` records it.
        public var kind: String {
            switch self {
            case .kill: "kill"
            case .stop: "stop"
            case .resume: "resume"
            case .restart: "restart"
            case .slow: "slow"
            case .errors: "errors"
            case .health(_, let healthy): healthy ? "health_on" : "health_off"
            case .weight: "weight"
            case .add: "add"
            case .remove: "remove"
            case .drain: "drain"
            }
        }

        /// The action's parameters, as `events.detail_json` records them.
        public var detail: [String: String] {
            switch self {
            case .slow(_, let latency): ["latency": latency.description]
            case .errors(_, let rate): ["errors": "\(rate)"]
            case .weight(_, let weight): ["weight": "\(weight)"]
            default: [:]
            }
        }
    }
}
