public import LBCore

/// What `lbctl sim` needs beyond what a real run configures (the `sim:` section of a scenario): how
/// long a request spends between the parts a real run has on its machine, and the CPU a backend spends
/// on each request besides the scenario's CPU work.
///
/// They are measured, not guessed: a real run's `proxy_requests` beside its `requests` gives the delays
/// (the request's due time to the proxy's pick, the pick to the backend's start, the answer at the
/// proxy to the client's done: `lbctl report`'s hops), and its backends' samples the CPU per request (CPU time over requests served,
/// less the work asked for).
public struct SimulationModel: Sendable, Hashable {
    /// From the request's due time to the proxy's pick (one way, a latency model): the load generator's
    /// lag in sending, and the way to the proxy.
    public var clientToProxy: LatencyModel
    /// From the pick to the backend's start, and from the backend's answer back to the proxy, each.
    public var proxyToBackend: LatencyModel
    /// From the backend's answer at the proxy to the client's done.
    public var proxyToClient: LatencyModel
    /// CPU time a backend spends on each request besides its CPU work (reading, answering): it counts
    /// against the backend's CPU limit.
    public var backendCPU: Duration
    /// CPU time a backend spends on each request after its answer has left (on its event loop, while
    /// its CPU thread goes on with the next): it counts against the backend's CPU limit, but no request
    /// waits for it. A backend's cgroup CPU per request, less the work and `backend-cpu`.
    public var backendCPUAfter: Duration = .zero
    /// CPU time a backend's CPU thread spends waking for a job after it slept (not when it goes from one
    /// job straight to the next): it counts against the backend's CPU limit, off any request's way. A
    /// backend's cgroup CPU per request falls as its thread gets busier; this is the difference between
    /// an idle thread's and a saturated one's.
    public var backendCPUWake: Duration = .zero
    /// The cores of the machine the backends run on, when they are fewer than the backends' CPU threads:
    /// all backends' CPU work shares them, and a thread that finds them all busy waits its turn (first
    /// come, first served, or in turns of `cpu-slice`); a thread throttled by its CPU quota gives its
    /// core up. `nil`: every thread has a core of its own.
    public var hostCPUs: Int?
    /// With `host-cpus`: the kernel's time slice. A backend's CPU thread that has run this long gives
    /// its core to a thread waiting for one and waits its turn again, as the scheduler shares a core
    /// among the threads that want it; it waits for a core to be released even when another is free,
    /// as the kernel keeps it on its core's run queue until it balances the cores. `nil`: a thread
    /// keeps its core until its job's work is done.
    /// Linux's EEVDF gives a thread 0.75 ms × (1 + log₂ cores), 1.5 ms on two cores; a scheduler trace
    /// of a real run (bench/RESULTS.md) shows CPU threads preempted by each other after a median 1.2 ms,
    /// waiting a median 1.5 ms.
    public var cpuSlice: Duration?
    /// With `host-cpus`: the chance, for each core that a backend's CPU work holds, that a backend's CPU
    /// thread woken for a job is placed on that core and waits its turn there (in `cpu-slice` turns)
    /// instead of taking a free core. Linux queues threads per core and moves them to an idle one
    /// only at its next balancing, so two busy threads may share one core while the other has less
    /// to do. Measured with `perf sched` on a real run (bench/RESULTS.md): how often a CPU thread's
    /// busy period shared its core with another CPU thread, by how many ran when it woke.
    public var cpuStacking: Double = 0
    /// How often other threads (event loops: the proxy's, the load generator's, the backends') preempt
    /// a backend's CPU thread while it works, per second of its work, and how long each preemption
    /// keeps it off its core: a job's CPU work takes that much longer in wall time. Measured with `perf
    /// sched` on a real run (bench/RESULTS.md): the short waits of the CPU threads, by what ran.
    public var preemptionsPerSecond: Double = 0
    public var preemption: LatencyModel = .fixed(.zero)
    /// With `host-cpus`: the chance, for each core that a backend's CPU work holds, that a thread waking
    /// for a request between the proxy and a backend waits for that core to be released instead of
    /// running at once. Three wake per request: the backend's event loop to read it and to answer, and
    /// the proxy's to read the answer. (The client's hops are measured whole on real runs, their waits
    /// included.) Measured with `perf sched` on a real run (bench/RESULTS.md): the share of wakeups that
    /// waited, by what the cores ran.
    public var wakeupWait: Double = 0

    /// No delay anywhere, and no CPU but the work asked for.
    public init(
        clientToProxy: LatencyModel = .fixed(.zero),
        proxyToBackend: LatencyModel = .fixed(.zero),
        proxyToClient: LatencyModel = .fixed(.zero),
        backendCPU: Duration = .zero
    ) {
        self.clientToProxy = clientToProxy
        self.proxyToBackend = proxyToBackend
        self.proxyToClient = proxyToClient
        self.backendCPU = backendCPU
    }

    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: ["delays", "backend-cpu", "backend-cpu-after", "backend-cpu-wake", "host-cpus", "wakeup-wait", "cpu-slice", "cpu-stacking", "preemptions"])
        self.init()
        if let cpu = map["backend-cpu"] { self.backendCPU = try cpu.duration() }
        if let cpu = map["backend-cpu-after"] { self.backendCPUAfter = try cpu.duration() }
        if let cpu = map["backend-cpu-wake"] { self.backendCPUWake = try cpu.duration() }
        if let cores = map["host-cpus"] { self.hostCPUs = try cores.int(in: 1...4_096) }
        if let wait = map["wakeup-wait"] {
            guard map["host-cpus"] != nil else { throw wait.error("wakeup-wait is a chance per host core held: give host-cpus too") }
            self.wakeupWait = try wait.double(in: 0...1)
        }
        if let slice = map["cpu-slice"] {
            guard map["host-cpus"] != nil else { throw slice.error("cpu-slice shares the host's cores: give host-cpus too") }
            self.cpuSlice = try slice.duration(atLeast: .microseconds(1))
        }
        if let stacking = map["cpu-stacking"] {
            guard map["host-cpus"] != nil else { throw stacking.error("cpu-stacking is a chance per host core held: give host-cpus too") }
            self.cpuStacking = try stacking.double(in: 0...1)
        }
        if let preemptions = map["preemptions"] {
            let preemptionMap = try preemptions.mapping(keys: ["per-second", "each"])
            guard let rate = preemptionMap["per-second"], let each = preemptionMap["each"] else {
                throw preemptions.error("preemptions needs per-second (how many a second of a CPU thread's work) and each (how long, a latency model)")
            }
            self.preemptionsPerSecond = try rate.double(in: 0...1_000_000)
            self.preemption = try each.parsed(LatencyModel.init(parsing:))
        }
        guard let delays = map["delays"] else { return }
        let delayMap = try delays.mapping(keys: ["client-proxy", "proxy-backend", "proxy-client"])
        if let value = delayMap["client-proxy"] { self.clientToProxy = try value.parsed(LatencyModel.init(parsing:)) }
        if let value = delayMap["proxy-backend"] { self.proxyToBackend = try value.parsed(LatencyModel.init(parsing:)) }
        if let value = delayMap["proxy-client"] { self.proxyToClient = try value.parsed(LatencyModel.init(parsing:)) }
    }
}
