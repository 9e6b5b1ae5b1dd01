import DequeModule
import LBConfig
import LBCore

/// One synthetic backend in virtual time, modelled as `lbctl backend` behaves: a job waits for one of
/// `capacity` places (``CapacityGate``, the very machine `lbctl backend` runs), then for one of the
/// backend's `threads` CPU threads to burn its CPU work, then sleeps its sampled latency, and is answered
/// (500 with the backend's error rate), freeing its place for the next in line.
///
/// A CPU limit below the threads' cores is a cgroup quota, as `lbctl run` sets it: in every 100 ms
/// period the backend's threads may run for limit × 100 ms at full speed, and then wait for the next
/// period (throttled). Each job's CPU is its work plus the scenario's `sim: backend-cpu`. Kill, stop,
/// resume, restart, slow, errors and health come from the fault timeline.
struct SimBackend {
    // What every request reads and writes comes first, packed into the fewest cache lines: with
    // thousands of backends, each request's backend is out of the core's first cache, and the fields
    // a request touches cost a miss per line they span.

    /// Bumped by a kill: events of jobs sent before it are stale.
    var epoch: Int32 = 0
    /// Whether its process runs: `false` after a kill until a restart.
    var running = true
    /// Whether its process is stopped (SIGSTOP): it accepts connections but answers nothing.
    var stopped = false
    /// The backend's own CPU per request (reading and answering it; 0: none), spent before the
    /// request takes a place, as the server reads a request before its handler admits it.
    let overheadNanos: Int64
    /// The CPU work one job asks for (0: none), done while it holds a place.
    let cpuNanosPerRequest: Int64
    /// The backend's CPU per request after its answer has left (0: none): booked against its quota.
    let afterNanos: Int64
    /// The backend's CPU each time its CPU thread wakes for a job after sleeping (0: none): booked
    /// against its quota.
    let wakeNanos: Int64
    /// Places and the queue before them (of job slots).
    var gate: CapacityGate<Int32>
    /// The latency model now, ready to draw from (a `slow` step changes it).
    var latency: LatencySampler
    /// The share of requests answered 500 now (an `errors` step changes it).
    var errorRate: Double
    /// Its draws: latency and errors, in the order jobs are served.
    var generator: SeededGenerator
    /// Jobs it answered.
    var served = 0
    /// Its live state as the proxy's pickers see it.
    let state: BackendState
    /// CPU threads busy, and its CPU threads.
    var cpuBusy = 0
    let threads: Int
    /// Jobs waiting for a CPU thread, in arrival order.
    var cpuQueue = Deque<Int32>()
    /// Virtual nanoseconds of CPU work done so far, for the samples.
    var cpuNanos: Int64 = 0
    /// The CPU time its threads may use in each quota period, when its limit is below their cores.
    let quotaNanos: Int64?
    /// The quota period the ledger is for, and what was used of it; and the period before it, which a
    /// thread that started then may still be using when another has booked CPU into the next.
    var quotaPeriod: Int64 = -1
    var quotaUsed: Int64 = 0
    var earlierPeriod: Int64 = -1
    var earlierUsed: Int64 = 0

    /// Whether its health path answers 200 (a `health` step changes it).
    var healthPathUp = true
    /// When it was stopped (SIGSTOP), while it is.
    var stoppedAt: Int64 = 0
    /// Job events that came due while it was stopped, with how long after the stop each came: they
    /// happen that long after it resumes.
    var frozen: [(job: Int, kind: SimEventKind, remaining: Int64)] = []
    /// What it is in the scenario.
    let spec: ScenarioBackend
    /// A cgroup's CPU quota period, as `lbctl run` sets it (`cpu.cfs_period_us`, `cpu.max`).
    static let quotaPeriodNanos: Int64 = 100_000_000

    init(spec: ScenarioBackend, seed: UInt64, index: Int, overhead: Duration, after: Duration = .zero, wake: Duration = .zero) {
        self.spec = spec
        self.state = BackendState(name: spec.name)
        self.gate = CapacityGate(capacity: spec.capacity, queueLimit: spec.queue)
        self.latency = LatencySampler(spec.latency)
        self.errorRate = spec.errors
        self.generator = SeededGenerator.derived(seed: seed, stream: 0x6261_636B &+ UInt64(index))
        self.threads = spec.threads
        self.cpuNanosPerRequest = spec.cpuWork.nanoseconds
        self.overheadNanos = overhead.nanoseconds
        self.afterNanos = after.nanoseconds
        self.wakeNanos = wake.nanoseconds
        if let limit = spec.cpuLimit, limit < Double(spec.threads) {
            self.quotaNanos = Int64((limit * Double(Self.quotaPeriodNanos)).rounded())
        } else {
            self.quotaNanos = nil
        }
    }

    /// When a job that starts its CPU work at `start` on a free thread is done with it (`done`): at full
    /// speed while the quota period has quota left, waiting for the next period when it has not. Jobs
    /// are booked against the ledger in the order they start, exact for one thread; with several running
    /// at once the quota they share is used in the same total, its order of use approximated.
    ///
    /// `running` is when its first stretch on a core ends: `done`, or the moment the quota runs out
    /// and the thread is throttled, when the kernel takes the core away from it. The rest of its work,
    /// in the next periods, is not counted against the host's cores.
    mutating func cpuFinish(from start: Int64, work: Int64) -> (done: Int64, running: Int64) {
        var time = start
        var work = work
        guard let quota = self.quotaNanos else { return (time + work, time + work) }
        let period = Self.quotaPeriodNanos
        var running: Int64?
        while true {
            let periodStart = time / period * period
            self.advanceLedger(to: periodStart)
            // What this period has used: the ledger's period, or the one before it; an older one counts
            // as used up (the ledger keeps two periods; it moves on when one is used up, or when a job
            // runs on past a period's end).
            let isLedgers = periodStart == self.quotaPeriod
            let used = isLedgers ? self.quotaUsed : periodStart == self.earlierPeriod ? self.earlierUsed : quota
            let left = quota - used
            guard left > 0 else {
                if running == nil { running = time }
                time = periodStart + period
                continue
            }
            let run = min(work, left, periodStart + period - time)
            if isLedgers { self.quotaUsed += run } else { self.earlierUsed += run }
            work -= run
            time += run
            if work == 0 { return (time, running ?? time) }
            if run == left {
                if running == nil { running = time }
                time = periodStart + period
            }
        }
    }

    /// CPU work done at `time` off any request's way (the event loop's, after an answer): it uses the
    /// quota period's quota, and may overrun it, as a thread that the kernel throttles only at its next
    /// check does; the next job then waits for the next period.
    mutating func charge(_ work: Int64, at time: Int64) {
        self.cpuNanos += work
        guard self.quotaNanos != nil else { return }
        let period = Self.quotaPeriodNanos
        // The ledger may already be in a later period (a job's CPU booked ahead): it goes on there.
        self.advanceLedger(to: time / period * period)
        self.quotaUsed += work
    }

    /// Moves the ledger on to the period starting at `periodStart` when that is later, keeping the
    /// period it leaves as the earlier one.
    private mutating func advanceLedger(to periodStart: Int64) {
        guard periodStart > self.quotaPeriod else { return }
        (self.earlierPeriod, self.earlierUsed) = (self.quotaPeriod, self.quotaUsed)
        (self.quotaPeriod, self.quotaUsed) = (periodStart, 0)
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
