public import LBConfig
public import LBCore
import DequeModule

/// How one simulated run goes: its length, its seed, and what it keeps.
public struct SimulationSettings: Sendable {
    /// How long the load runs, in virtual time (the scenario's duration unless overridden).
    public var duration: Duration
    /// The first stretch of the load, left out of the figures.
    public var warmup: Duration
    /// Stop the load after this many requests, whatever the duration (`--requests`).
    public var requestLimit: Int?
    /// The run's seed: the scenario's, moved by the repeat.
    public var seed: UInt64
    /// Whether every request becomes a row (`requests`, `proxy_requests`); without, only the tally.
    public var keepsRecords: Bool
    /// Clients, rate and backends multiplied by this (`--scale`).
    public var scale: Int
    /// Answered requests per batch of the tally's batch means (0: none).
    public var batchSize = 0

    /// The settings of a run of `scenario` with seed `seed`, keeping records.
    public init(scenario: Scenario, seed: UInt64) {
        self.duration = scenario.duration
        self.warmup = scenario.warmup
        self.requestLimit = nil
        self.seed = seed
        self.keepsRecords = true
        self.scale = 1
    }
}

/// A scenario that cannot be simulated as asked, with the reason.
public struct SimulationError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// One algorithm of a scenario in virtual time (DESIGN §9): the scenario's clients, backends and proxy
/// modelled as discrete events, driving the very code the proxy, `lbctl backend` and the load generator
/// run with the real clock.
///
/// - Clients follow the scenario's ``ArrivalSchedule`` (the load generator's, from the same seed), each
///   with its synthetic address and, when the load has keys, a Zipf key drawn as the load generator draws
///   it. A client gives a request up after the load's timeout, as the load generator does.
/// - The proxy hashes each request's address and key as the proxy does and picks with the algorithm's
///   picker (``Picker/pick(_:avoiding:count:state:)`` after a failure); counts attempts in flight on each
///   ``BackendState``; holds them under the service's connection limit (``ConnectionLimiter``); gives up
///   on an attempt after the response-header timeout; decides retries and requeues with the service's
///   ``RetryPolicy``, backoff and ``RetryBudget``; probes backends with ``HealthCheckStateMachine``;
///   ejects them with ``OutlierDetector``; ramps them with ``SlowStart``.
/// - Each backend is a ``SimBackend``: places, a queue, CPU threads slowed by a CPU limit, a latency
///   model and an error rate. It keeps working on an attempt the proxy gave up on.
/// - Between them lie the scenario's ``SimulationModel``.
///
/// Times in records are virtual microseconds since the load's start; the run records the phases
/// `load`, `measure` (after the warm-up), `drain` (the schedule is over) and `stop`, and the events a
/// real run records (timeline steps, health changes, ejections).
public struct Simulation {
    let scenario: Scenario
    let entry: Scenario.AlgorithmUnderTest
    let settings: SimulationSettings
    /// The proxy's service as the scenario configures it for this algorithm.
    let service: Service
    /// The backends, in the scenario's order (index + 1 is the id records carry).
    let backends: FixedTable<SimBackend>
    /// What the proxy keeps per backend, by the same index.
    let proxyBackends: FixedTable<SimProxyBackend>
    var requests = SlotTable<SimRequest>()
    var jobs = SlotTable<SimJob>()
    var events = EventQueue()
    var schedule: ArrivalSchedule
    let keys: ZipfKeys?
    var keyGenerator: SeededGenerator
    /// Draws of the delays between the parts.
    var delayGenerator: SeededGenerator
    /// The proxy's draws: backoffs, health-check phases.
    var proxyGenerator: SeededGenerator
    /// The delays between the parts, ready to draw from.
    let clientToProxy: LatencySampler
    let proxyToBackend: LatencySampler
    let proxyToClient: LatencySampler
    /// Each client's WebSocket, when the load is WebSocket messages.
    var webSockets: [SimWebSocket]
    /// The backends each request's failed attempts went to, by request slot, once one failed.
    var tried: [Int32: [Int32]] = [:]
    /// Each client's address and its hash (the proxy's client key).
    let clientAddresses: [String]
    let clientKeys: [UInt64]
    /// Each key's hash, as the proxy hashes its `X-LBLab-Key` header.
    let keyHashes: [UInt64]
    /// The hash of the load's path, for a service that hashes the path.
    let pathHash: UInt64
    /// The clients' timeouts, the proxy's response-header timeouts and its connection queue's
    /// timeouts, each of one length and so in the order they were set.
    var clientDeadlines = DeadlineQueue<(slot: Int32, id: Int64)>()
    var headerDeadlines = DeadlineQueue<(slot: Int32, attempt: UInt32)>()
    var queueDeadlines = DeadlineQueue<(slot: Int32, attempt: UInt32)>()
    let clientTimeout: Int64
    /// The service's response-header timeout, in nanoseconds (read once: a `Duration`'s conversion
    /// costs a 128-bit multiplication).
    let responseHeaderTimeout: Int64
    /// Requests the clients still wait for.
    var clientOpen = 0
    /// The backends in the proxy's service, by index, in the order the picker's snapshot has them.
    var inService: [Int]
    /// The weight each backend has at the proxy now (a `weight` step changes it).
    var weights: [Double]
    /// The proxy's retry budget (its first event loop's).
    var retryBudget: RetryBudget
    /// Passive outlier detection, when the service has it.
    var outliers: OutlierDetector<Int>?
    /// Whether a readmission check and a slow-start step are scheduled.
    var readmitScheduled = false
    var rampScheduled = false
    /// Each backend's CPU time at the last sample.
    var lastCPUNanos: [Int64]
    /// The host's cores free for backends' CPU work (`Int.max` when the scenario gives none), and the
    /// jobs whose backend thread waits for one, in order.
    var hostCoresFree: Int
    var hostQueue = Deque<Int32>()
    /// When each held core is released (unordered; as many as cores are held).
    var coresHeldUntil: [Int64] = []
    /// The chance per held core that a waking thread waits for it (`sim: wakeup-wait`).
    let wakeupWait: Double
    /// The kernel's time slice on the host's cores, in nanoseconds (`sim: cpu-slice`; 0: none).
    let cpuSlice: Int64
    /// The chance per held core that a CPU thread woken for a job waits for that core (`sim:
    /// cpu-stacking`).
    let cpuStacking: Double
    /// The CPU work between preemptions of a CPU thread (exponential), and each one's length (`sim:
    /// preemptions`); `nil`: none.
    let preemptionGap: LatencySampler?
    let preemption: LatencySampler
    /// What the service's `hash-key` hashes, read once: the client's address, the key the load generator
    /// sends in `X-LBLab-Key`, the path, or nothing the simulated requests carry (another header, a
    /// cookie).
    let hashSource: HashSource
    enum HashSource { case clientIP, key, path, none }
    /// Virtual now.
    var now: Int64 = 0
    var nextRequestID: Int64 = 0
    var nextAttemptID: UInt32 = 1
    /// What was recorded and counted.
    var tally: SimTally
    var output: SimOutput

    /// A run of `entry` of `scenario` with `settings`, recording into `sink` (which also takes the
    /// backends and the events when given).
    public init(
        scenario: Scenario,
        entry: Scenario.AlgorithmUnderTest,
        settings: SimulationSettings,
        sink: (any RecordSink)?
    ) throws(SimulationError) {
        let scaled = Self.scaled(scenario, by: settings.scale)
        self.scenario = scaled
        self.entry = entry
        self.settings = settings
        // The service's settings, read as the proxy reads them; its backends are the simulator's own.
        let service: Service
        do {
            service = try scaled.service(for: entry, runSeed: settings.seed)
        } catch {
            throw SimulationError("\(scaled.file): \(error)")
        }
        self.service = service
        self.backends = FixedTable(
            scaled.backends.enumerated().map { index, spec in
                SimBackend(
                    spec: spec, seed: settings.seed, index: index, overhead: scaled.simulation.backendCPU,
                    after: scaled.simulation.backendCPUAfter, wake: scaled.simulation.backendCPUWake
                )
            }
        )
        let limits = service.limits
        self.proxyBackends = FixedTable(
            scaled.backends.map { _ in
                SimProxyBackend(limiter: ConnectionLimiter(maxActive: limits.maxConnections, maxQueued: limits.maxQueued, queueTimeout: limits.queueTimeout))
            }
        )
        let load = scaled.load
        self.schedule = ArrivalSchedule(
            clients: Array(0..<load.clients),
            ratePerClient: load.ratePerClient,
            process: load.arrival,
            duration: settings.duration,
            limit: settings.requestLimit,
            seed: settings.seed
        )
        self.keys = load.keyCount.map { ZipfKeys(count: $0, exponent: load.zipf) }
        // The load generator's key stream of its first worker.
        self.keyGenerator = SeededGenerator.derived(seed: settings.seed, stream: 0x6B65_7973)
        self.delayGenerator = SeededGenerator.derived(seed: settings.seed, stream: 0x6465_6C61_7973)
        self.proxyGenerator = SeededGenerator.derived(seed: settings.seed, stream: 0x7072_6F78_79)
        self.clientToProxy = LatencySampler(scaled.simulation.clientToProxy)
        self.proxyToBackend = LatencySampler(scaled.simulation.proxyToBackend)
        self.proxyToClient = LatencySampler(scaled.simulation.proxyToClient)
        self.clientAddresses = (0..<load.clients).map(ClientAddresses.address(of:))
        self.clientKeys = self.clientAddresses.map(StableHash.hash)
        self.keyHashes = (0..<(load.keyCount ?? 0)).map { StableHash.hash(String($0)) }
        self.pathHash = StableHash.hash(load.path)
        self.clientTimeout = load.timeout.nanoseconds
        self.responseHeaderTimeout = service.timeouts.responseHeader.nanoseconds
        self.inService = scaled.backends.indices.filter { scaled.backends[$0].inService }
        self.weights = scaled.backends.map { Double($0.weight) }
        self.retryBudget = RetryBudget(share: service.retryBudget.share, minimumConcurrency: service.retryBudget.minimumConcurrency)
        self.outliers = service.outlierDetection.map { OutlierDetector(configuration: $0) }
        self.lastCPUNanos = Array(repeating: 0, count: scaled.backends.count)
        self.hostCoresFree = scaled.simulation.hostCPUs ?? .max
        self.wakeupWait = scaled.simulation.wakeupWait
        self.cpuSlice = scaled.simulation.cpuSlice?.nanoseconds ?? 0
        self.cpuStacking = scaled.simulation.cpuStacking
        let perSecond = scaled.simulation.preemptionsPerSecond
        self.preemptionGap = perSecond > 0 ? LatencySampler(.exponential(mean: .nanoseconds(Int64((1e9 / perSecond).rounded())))) : nil
        self.preemption = LatencySampler(scaled.simulation.preemption)
        self.hashSource = switch service.hashKey {
        case .clientIP: .clientIP
        case .header(let name) where name.lowercased() == "x-lblab-key": .key
        case .path: .path
        case .header, .cookie: .none
        }
        self.webSockets = load.webSocket ? Array(repeating: SimWebSocket(), count: load.clients) : []
        let keepsTotals = sink != nil && !settings.keepsRecords
        self.tally = SimTally(
            backends: scaled.backends.count, warmupNanos: min(settings.warmup, settings.duration / 2).nanoseconds, histogram: !keepsTotals
        )
        self.tally.batchSize = settings.batchSize
        let changesKeys = load.keyCount != nil && scaled.timeline.contains { ["add", "remove"].contains($0.action.kind) }
        self.output = SimOutput(
            sink: sink, keepsRecords: settings.keepsRecords,
            totals: SimTotals(
                backends: scaled.backends.count, inServiceAtStart: self.inService, warmupNanos: self.tally.warmupNanos, tracksKeys: changesKeys
            )
        )
    }

    /// `scenario` with its clients, rate and backends multiplied by `factor`: each backend `b` becomes
    /// `b`, `b.2`, … `b.K`; clients grow as far as client addresses go, and each sends faster beyond.
    static func scaled(_ scenario: Scenario, by factor: Int) -> Scenario {
        guard factor > 1 else { return scenario }
        var scaled = scenario
        scaled.backends = scenario.backends.flatMap { backend in
            (1...factor).map { copy in
                var replica = backend
                if copy > 1 { replica.name = "\(backend.name).\(copy)" }
                return replica
            }
        }
        let total = scenario.load.totalRate * Double(factor)
        scaled.load.clients = min(ClientAddresses.capacity, scenario.load.clients * factor)
        scaled.load.ratePerClient = total / Double(scaled.load.clients)
        return scaled
    }

    /// Runs it to the end of its schedule and until every request is answered or given up on; calls
    /// `progress` about every `progressEvery` requests and stops early when it returns `false`.
    public mutating func run(progressEvery: Int = 1_000_000, progress: (SimProgress) -> Bool = { _ in true }) -> SimOutcome {
        self.output.begin(backends: self.backends.map(\.spec), warmup: self.tally.warmupNanos)
        let picker: any Picker
        do {
            picker = try self.entry.algorithm.makePicker(Self.pickerParameters(self.service.parameters))
        } catch {
            // The scenario was checked: its parameters make a picker.
            preconditionFailure("\(error)")
        }
        // Each algorithm's own type, so that the event loop is specialized for it: run on the
        // existential, the loop is generic code that reaches the picker and its state through witness
        // tables at every step.
        switch picker {
        case let picker as RoundRobin: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as SmoothWeightedRoundRobin: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as StickyRoundRobin: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as RandomPicker: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as WeightedRandom: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as LeastConnections: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as PowerOfTwoChoices: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as PeakEWMA: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as IPHash: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as ConsistentHash: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as Maglev: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as Rendezvous: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        case let picker as LeastResources: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        default: return self.run(picker: picker, progressEvery: progressEvery, progress: progress)
        }
    }

    /// The parameters of the proxy's picker on its first event loop (the proxy's stream of the seed).
    static func pickerParameters(_ configured: PickerParameters) -> PickerParameters {
        var parameters = configured
        parameters.seed = StableHash.combine(parameters.seed, 0)
        return parameters
    }
}

/// How far a simulated run has got, for the progress line.
public struct SimProgress: Sendable {
    /// Virtual time simulated.
    public var virtualTime: Duration
    /// Requests due so far.
    public var requests: Int
    /// The load's length.
    public var duration: Duration
}

/// How a simulated run ended, and its figures.
public struct SimOutcome: Sendable {
    /// Whether it ran to its end (`false`: stopped by `progress`).
    public var completed: Bool
    /// Requests simulated.
    public var requests: Int
    /// Events processed.
    public var events: Int
    /// Virtual time at the end.
    public var virtualTime: Duration
    /// The figures.
    public var tally: SimTally
    /// What a run without records stores instead of rows (`nil` when it kept rows or had no sink).
    public var totals: RunTotals?
}
