import DequeModule
import LBConfig
import LBCore

/// One synthetic backend in virtual time, modelled as `lbctl backend` behaves: a request waits for one
/// of `capacity` places (``CapacityGate``, the very machine `lbctl backend` runs), then for one of the
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
    /// Places and the queue before them.
    var gate: CapacityGate<Int32>
    /// Requests waiting for a CPU thread, in arrival order.
    var cpuQueue = Deque<Int32>()
    /// CPU threads busy.
    var cpuBusy = 0
    /// The latency model now (a `slow` step changes it).
    var latency: LatencyModel
    /// The share of requests answered 500 now (an `errors` step changes it).
    var errorRate: Double
    /// Whether its health path answers 200 (a `health` step changes it).
    var healthPathUp = true
    /// Whether its process runs: `false` after a kill until a restart.
    var running = true
    /// Whether its process is stopped (SIGSTOP): it accepts connections but answers nothing.
    var stopped = false
    /// Its draws: latency and errors, in the order requests are served.
    var generator: SeededGenerator
    /// Virtual nanoseconds of CPU work done so far, for the samples.
    var cpuNanos: Int64 = 0
    /// Requests it answered.
    var served = 0
    /// Bumped by a kill: events of requests sent before it are stale.
    var epoch: Int32 = 0
    /// When it was stopped (SIGSTOP), while it is.
    var stoppedAt: Int64 = 0
    /// Events that came due while it was stopped, with how long after the stop each came: they happen
    /// that long after it resumes.
    var frozen: [(slot: Int, kind: SimEventKind, remaining: Int64)] = []

    /// The speed of one CPU thread: 1, or the CPU limit shared by the threads when it is lower.
    let cpuSpeed: Double

    init(spec: ScenarioBackend, seed: UInt64, index: Int) {
        self.spec = spec
        self.state = BackendState(name: spec.name)
        self.gate = CapacityGate(capacity: spec.capacity, queueLimit: spec.queue)
        self.latency = spec.latency
        self.errorRate = spec.errors
        self.generator = SeededGenerator.derived(seed: seed, stream: 0x6261_636B &+ UInt64(index))
        self.cpuSpeed = min(1, (spec.cpuLimit ?? Double(spec.threads)) / Double(spec.threads))
    }

    /// The virtual time one request's CPU work takes on one thread.
    var cpuNanosPerRequest: Int64 {
        Int64((Double(self.spec.cpuWork.nanoseconds) / self.cpuSpeed).rounded())
    }

    /// Draws whether the next request served fails (500).
    mutating func drawsError() -> Bool {
        self.errorRate > 0 && self.generator.unitInterval() < self.errorRate
    }
}
