import LBConfig
import LBCore
import LBStats
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Samples every backend, the proxy, the load generator and the host on one timer into `samples` (DESIGN §5):
/// CPU used (the container's counter when there is one, else the process's), CPU throttled (containers
/// only), memory, open descriptors, bytes read and written (by system calls, or a container's network), and requests
/// in flight (backends and proxy: the proxy's own counts from its admin API; the load generator: sent
/// less completed at its last progress report).
///
/// With `sendsFigures` (a `least-resources` run), each backend's ``ResourceFigure`` from its last two
/// samples goes to the proxy's admin API as it is taken, as an agent would send it.
final class RunSampler: Sendable {
    private let fleet: any BackendSet
    private let proxy: ProxyProcess
    private let sink: any RecordSink
    private let clockOrigin: UInt64
    private let interval: Duration
    private let sendsFigures: Bool
    private let lastSamples = Mutex<[String: ResourceSample]>([:])
    private let hostCPUs = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// The load generator's requests in flight, updated by its progress reports.
    let loadInFlight = Atomic<Int>(0)
    private let taken = Atomic<Int>(0)

    init(fleet: any BackendSet, proxy: ProxyProcess, sink: any RecordSink, clockOrigin: UInt64, interval: Duration, sendsFigures: Bool = false) {
        self.fleet = fleet
        self.proxy = proxy
        self.sink = sink
        self.clockOrigin = clockOrigin
        self.interval = interval
        self.sendsFigures = sendsFigures
    }

    /// Samples taken so far.
    var samplesTaken: Int { self.taken.load(ordering: .relaxed) }

    /// Samples until cancelled, on ticks of the interval from the run's origin.
    func run() async {
        let intervalNanos = UInt64(self.interval.nanoseconds)
        var tick = (NIODeadline.now().uptimeNanoseconds - self.clockOrigin) / intervalNanos + 1
        while !Task.isCancelled {
            let due = self.clockOrigin + tick * intervalNanos
            let now = NIODeadline.now().uptimeNanoseconds
            if due > now { try? await Task.sleep(for: .nanoseconds(Int64(due - now))) }
            if Task.isCancelled { break }
            await self.sampleAll()
            tick = max(tick + 1, (NIODeadline.now().uptimeNanoseconds - self.clockOrigin) / intervalNanos + 1)
        }
    }

    /// One sample of every source, all stamped with the same time.
    func sampleAll() async {
        let tMicros = ScenarioRun.micros(since: self.clockOrigin)
        // A stopped backend holds its connections; the proxy still answers, so this stays short.
        let inFlight = await self.proxy.inFlight(timeout: self.interval / 2)
        for (spec, _) in self.fleet.placements {
            guard var sample = await self.fleet.sample(spec.name, tMicros: tMicros) else { continue }
            sample.inFlight = inFlight[spec.name]
            self.record(sample)
            if self.sendsFigures { await self.sendFigure(spec, sample) }
        }
        if self.proxy.process.isRunning {
            var sample = Self.processSample(pid: self.proxy.process.pid, tMicros: tMicros, source: "proxy")
            sample.inFlight = inFlight.isEmpty ? nil : inFlight.values.reduce(0, +)
            self.record(sample)
        }
        // The machine as a whole: busy time, and the hypervisor's steal as time throttled (the report
        // divides both by the time passed; the CPU count is in the run's parameters).
        if let host = HostStats.read() {
            self.record(ResourceSample(tMicros: tMicros, source: "host", cpuUsageMicros: host.busyMicros, cpuThrottledMicros: host.stealMicros))
        }
        var load = Self.processSample(pid: getpid(), tMicros: tMicros, source: "loadgen")
        load.inFlight = self.loadInFlight.load(ordering: .relaxed)
        self.record(load)
    }

    /// Sends `backend`'s figure from its previous sample and `sample` to the proxy. A proxy that does not
    /// answer in half an interval misses this figure; the next one comes with the next sample.
    private func sendFigure(_ backend: ScenarioBackend, _ sample: ResourceSample) async {
        let previous = self.lastSamples.withLock { $0.updateValue(sample, forKey: backend.name) }
        guard let figure = ResourceFigure(backend: backend, previous: previous, current: sample, hostCPUs: self.hostCPUs) else { return }
        _ = try? await self.proxy.adminCall("PUT", "/backends/\(backend.name)/usage", body: figure.body, timeout: self.interval / 2)
    }

    private func record(_ sample: ResourceSample) {
        self.sink.record(sample)
        self.taken.wrappingAdd(1, ordering: .relaxed)
    }

    static func processSample(pid: Int32, tMicros: Int64, source: String) -> ResourceSample {
        guard let stats = ProcessStats.read(pid: pid) else { return ResourceSample(tMicros: tMicros, source: source) }
        return ResourceSample(
            tMicros: tMicros,
            source: source,
            cpuUsageMicros: stats.cpuMicros,
            rssBytes: stats.rssBytes,
            openFDs: stats.openFDs,
            rxBytes: stats.readBytes,
            txBytes: stats.writtenBytes
        )
    }
}
