import DequeModule
import LBConfig
import LBCore

/// One synthetic backend in virtual time, modelled as `lbctl backend` behaves: a job waits for one of
/// `capacity` places (``CapacityGate``, the very machine `lbctl backend` runs), then for one of the
/// backend's `threads` CPU threads to burn its CPU work, then sleeps its sampled latency, and is answered
/// (500 with the backend's error rate), freeing its place for the next in line.
///
/// A CPU limit below the threads' cores slows the CPU work in proportion (a container throttled to half
/// a core does 1 ms of work in 2 ms), as its cgroup quota does on average. Kill, stop, resume, restart,
/// slow, errors and health come from the fault timeline.
struct SimBackend {
    /// What it is in the scenario.
    let spec: ScenarioBackend
    /// Its live state as the proxy's pickers see it.
    let state: BackendState
    /// Places and the queue before them (of job slots).
    var gate: CapacityGate<Int32>
    /// Jobs waiting for a CPU thread, in arrival order.
    var cpuQueue = Deque<Int32>()
    /// CPU threads busy.
    var cpuBusy = 0
    /// The latency model now, ready to draw from (a `slow` step changes it).
    var latency: LatencySampler
    /// The share of requests answered 500 now (an `errors` step changes it).
    var errorRate: Double
    /// Whether its health path answers 200 (a `health` step changes it).
    var healthPathUp = true
    /// Whether its process runs: `false` after a kill until a restart.
    var running = true
    /// Whether its process is stopped (SIGSTOP): it accepts connections but answers nothing.
    var stopped = false
    /// Its draws: latency and errors, in the order jobs are served.
    var generator: SeededGenerator
    /// Virtual nanoseconds of CPU work done so far, for the samples.
    var cpuNanos: Int64 = 0
    /// Jobs it answered.
    var served = 0
    /// Bumped by a kill: events of jobs sent before it are stale.
    var epoch: Int32 = 0
    /// When it was stopped (SIGSTOP), while it is.
    var stoppedAt: Int64 = 0
    /// Job events that came due while it was stopped, with how long after the stop each came: they
    /// happen that long after it resumes.
    var frozen: [(job: Int, kind: SimEventKind, remaining: Int64)] = []
    /// The speed of one CPU thread: 1, or the CPU limit shared by the threads when it is lower.
    let cpuSpeed: Double
    /// The virtual time one job's CPU work takes on one thread (0: none).
    let cpuNanosPerRequest: Int64
    /// Its CPU threads.
    let threads: Int

    init(spec: ScenarioBackend, seed: UInt64, index: Int) {
        self.spec = spec
        self.state = BackendState(name: spec.name)
        self.gate = CapacityGate(capacity: spec.capacity, queueLimit: spec.queue)
        self.latency = LatencySampler(spec.latency)
        self.errorRate = spec.errors
        self.generator = SeededGenerator.derived(seed: seed, stream: 0x6261_636B &+ UInt64(index))
        self.threads = spec.threads
        let speed = min(1, (spec.cpuLimit ?? Double(spec.threads)) / Double(spec.threads))
        self.cpuSpeed = speed
        self.cpuNanosPerRequest = Int64((Double(spec.cpuWork.nanoseconds) / speed).rounded())
    }

    /// Draws whether the next job served fails (500).
    mutating func drawsError() -> Bool {
        self.errorRate > 0 && self.generator.unitInterval() < self.errorRate
    }

    /// A kill: every place, queue and thread is lost with the process.
    mutating func killed() {
        self.running = false
        self.stopped = false
        self.epoch &+= 1
        self.gate = CapacityGate(capacity: self.spec.capacity, queueLimit: self.spec.queue)
        self.cpuQueue.removeAll()
        self.cpuBusy = 0
        self.frozen.removeAll()
    }
}

/// What the proxy keeps per backend beyond its ``BackendState``: its connection limit and queue, its
/// health checks, and since when it ramps up under slow start.
struct SimProxyBackend {
    /// `limits:` of the service (HAProxy's `maxconn`, `maxqueue`, `timeout queue`); waiters are
    /// request slots and attempts, packed.
    var limiter: ConnectionLimiter<UInt64>
    /// Active health checks, when the service has them.
    var health: HealthCheckStateMachine?
    /// What the probe in flight will find: `true` passed, `false` failed, `nil` no answer in time.
    var probeOutcome: Bool?
    /// When slow start began for it (it joined or came back), or `nil` when it does not ramp.
    var rampingSince: Int64?
}
