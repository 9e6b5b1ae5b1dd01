import LBConfig
import LBCore
import LBHTTP
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A backend as one event loop sees it: its spec and shared state, and the loop's connections to it.
///
/// What every request uses (state, limiter, metrics, outlier tracking, name) is also kept in a field of
/// its own: reaching it through ``runtime``, a struct of a dozen references, copied the whole struct and
/// retained each of them, twice a request.
final class LoopBackend {
    let runtime: BackendRuntime
    let pool: UpstreamPool
    let state: BackendState
    let limiter: BackendLimiter
    let metrics: BackendMetrics
    let tracking: BackendTracking
    let name: String

    init(runtime: BackendRuntime, pool: UpstreamPool) {
        self.runtime = runtime
        self.pool = pool
        self.state = runtime.state
        self.limiter = runtime.limiter
        self.metrics = runtime.metrics
        self.tracking = runtime.tracking
        self.name = runtime.spec.name
    }

    var spec: BackendSpec { self.runtime.spec }
}

/// A service as one event loop sees it: its backends and tunables as of the service's version, a
/// picker built over them, and the loop's retry budget for it.
final class LoopService {
    let runtime: ServiceRuntime
    private(set) var picker: any Picker
    private(set) var backends: [LoopBackend] = []
    /// How the service picks and treats requests, as of ``version``.
    private(set) var tunables: ServiceTunables
    /// The service's retry budget on this loop.
    var retryBudget: RetryBudget
    /// Whether the service no longer runs (a reload removed it); requests in flight on it finish.
    private(set) var isRetired = false
    private var version = -1
    /// When slow-start weights are next due for a rebuild (uptime nanoseconds; `max` while none ramps).
    private var rampCheckNanos = Int64.max
    private let eventLoop: any EventLoop
    /// Which stream of the configured seed this loop's pickers draw from.
    private let seedStream: UInt64

    /// The service's view on the loop of `eventLoop`; `seedStream` sets the picker's own stream of the
    /// configured seed.
    init(runtime: ServiceRuntime, eventLoop: any EventLoop, seedStream: UInt64) throws {
        self.runtime = runtime
        self.eventLoop = eventLoop
        self.seedStream = seedStream
        let tunables = runtime.tunables
        self.tunables = tunables
        self.retryBudget = RetryBudget(share: tunables.retryBudget.share, minimumConcurrency: tunables.retryBudget.minimumConcurrency)
        self.picker = try Self.makePicker(tunables, seedStream: seedStream)
        self.refreshIfChanged()
    }

    private static func makePicker(_ tunables: ServiceTunables, seedStream: UInt64) throws -> any Picker {
        var parameters = tunables.parameters
        parameters.seed = StableHash.combine(parameters.seed, seedStream)
        return try tunables.algorithm.makePicker(parameters)
    }

    /// The service was removed: its idle connections close now, the busy ones when released.
    func retire() {
        self.isRetired = true
        for backend in self.backends { backend.pool.retire() }
    }

    /// Takes up the service's backend list and tunables if they changed since the last look: pools of
    /// backends that stay are kept, those of removed backends retired (their idle connections closed,
    /// the busy ones closed when released), and the picker rebuilt (made anew when the algorithm or
    /// its parameters changed; a reload has checked that they make one).
    func refreshIfChanged() {
        guard self.runtime.version != self.version else { return }
        let (members, tunables, version) = self.runtime.snapshot()
        if tunables.algorithm != self.tunables.algorithm || tunables.parameters != self.tunables.parameters,
            let picker = try? Self.makePicker(tunables, seedStream: self.seedStream)
        {
            self.picker = picker
        }
        if tunables.pool != self.tunables.pool {
            for backend in self.backends { backend.pool.settings = tunables.pool }
        }
        self.retryBudget.share = tunables.retryBudget.share
        self.retryBudget.minimumConcurrency = tunables.retryBudget.minimumConcurrency
        self.tunables = tunables
        var old: [ObjectIdentifier: LoopBackend] = [:]
        for backend in self.backends { old[ObjectIdentifier(backend.state)] = backend }
        self.backends = members.map { member in
            if let kept = old.removeValue(forKey: ObjectIdentifier(member.state)) {
                return kept.spec == member.spec ? kept : LoopBackend(runtime: member, pool: kept.pool)
            }
            return LoopBackend(
                runtime: member,
                pool: UpstreamPool(backend: member.spec, eventLoop: self.eventLoop, settings: tunables.pool)
            )
        }
        for (_, removed) in old { removed.pool.retire() }
        if self.isRetired {
            for backend in self.backends { backend.pool.retire() }
        }
        self.version = version
        self.rebuildPicker(now: Instant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds)))
    }

    /// Rebuilds the picker with each backend's weight now (lowered while slow start ramps it up).
    private func rebuildPicker(now: Instant) {
        var ramping = false
        self.picker.rebuild(
            self.backends.map { backend in
                let (weight, ramps) = self.runtime.effectiveWeight(backend.runtime, now: now, slowStart: self.tunables.slowStart)
                ramping = ramping || ramps
                return Backend(state: backend.state, weight: weight)
            }
        )
        self.rampCheckNanos = ramping ? now.nanoseconds + self.tunables.slowStart.step.nanoseconds : .max
    }

    /// A backend for `request` other than those in `excluded` (the backends a retried request already
    /// failed on) whenever another is available (``Picker/pick(_:avoiding:count:state:)``), or `nil` when
    /// none is.
    func pick(_ request: PickRequest, excluded: [ObjectIdentifier]) -> LoopBackend? {
        self.refreshIfChanged()
        if request.now.nanoseconds >= self.rampCheckNanos { self.rebuildPicker(now: request.now) }
        let backends = self.backends
        return self.picker.pick(request, avoiding: excluded, count: backends.count) { backends[$0].state }.map { backends[$0] }
    }

    /// Tells the picker that a request on `backend` finished after `latency`.
    func finished(_ backend: BackendState, latency: Duration, now: Instant) {
        self.picker.requestFinished(on: backend, latency: latency, now: now)
    }
}

/// What one event loop owns (DESIGN §3): a picker per service, so a pick takes no lock, and a pool of
/// upstream connections per backend. Touched only on its loop.
final class LoopContext {
    let eventLoop: any EventLoop
    let runtime: ProxyRuntime
    /// Every service run since the start, by the runtime's index (see ``ProxyRuntime/Table``).
    private(set) var services: [LoopService]
    /// Routes requests to ``services``.
    private(set) var router: ServiceRouter
    /// Sets the forwarded headers, by the trusted proxies.
    private(set) var forwarded: ForwardedHeaders
    /// The runtime's generation that ``services``, ``router`` and ``forwarded`` are of.
    private var generation: Int
    private let index: Int
    /// Randomness for retry backoff.
    var generator: SeededGenerator
    private var requestIDs = SeededGenerator(seed: UInt64.random(in: .min ... .max))
    private var sweep: Scheduled<Void>?
    /// Header lines of the head being read, reused from one request to the next.
    var fields: [HTTPHeaderField] = []
    /// Exchanges of finished requests, for the next ones on any of the loop's connections: an idle
    /// keep-alive connection holds none (at 10,000 idle clients that is several MiB), and a busy loop
    /// allocates none once it has as many as it has requests in flight.
    private var spareExchanges: [ProxyExchange] = []
    private static let maxSpareExchanges = 4_096

    /// An exchange for a new request.
    func takeExchange() -> ProxyExchange {
        self.spareExchanges.popLast() ?? ProxyExchange()
    }

    /// Takes back the exchange of a request that ended (and was cleared).
    func returnExchange(_ exchange: ProxyExchange) {
        if self.spareExchanges.count < Self.maxSpareExchanges { self.spareExchanges.append(exchange) }
    }
    /// Request rows and access-log lines not yet handed over, when the proxy records.
    let records: LoopRecords?

    /// Connections written to during this tick of the event loop and not flushed yet. The writes of a
    /// tick go out together once its I/O events have all been handled (NIO runs the tasks queued
    /// meanwhile right after them): a backend or client then finds the requests or responses of one
    /// tick ready at once, and is woken once for them instead of once per write, which on a busy
    /// machine saves more of everyone's CPU than the few microseconds the writes wait. The requests of
    /// one backend go out one after another (``StableGrouping``): written in the
    /// order of the tick, round robin interleaves the backends, and each backend woken by its first
    /// request would take it and sleep again before the next reached it.
    private var clientsToFlush: [ProxyHTTPHandler] = []
    private var upstreamsToFlush: [UpstreamConnection] = []
    private var upstreamGrouping = StableGrouping<UpstreamConnection, ObjectIdentifier>()
    private var flushQueued = false
    /// When the loop gives its core away after a tick's writes (``CoreYield``).
    private(set) var coreYield: CoreYield

    /// Flushes `client`'s connection at the end of this tick.
    func flushAtEndOfTick(_ client: ProxyHTTPHandler) {
        self.clientsToFlush.append(client)
        self.queueFlush()
    }

    /// Flushes `upstream`'s connection at the end of this tick.
    func flushAtEndOfTick(_ upstream: UpstreamConnection) {
        self.upstreamsToFlush.append(upstream)
        self.queueFlush()
    }

    private func queueFlush() {
        guard !self.flushQueued else { return }
        self.flushQueued = true
        self.eventLoop.assumeIsolated().execute {
            self.flushQueued = false
            // Upstream first: a request's way to its backend is the longer one.
            self.upstreamGrouping.group(&self.upstreamsToFlush) { $0.pool }
            for upstream in self.upstreamsToFlush { upstream.flushIfPending() }
            self.upstreamsToFlush.removeAll(keepingCapacity: true)
            for client in self.clientsToFlush { client.flushIfPending() }
            self.clientsToFlush.removeAll(keepingCapacity: true)
            // With the yield off, no clock reading either.
            if self.coreYield.intervalNanos > 0, self.coreYield.isDue(at: NIODeadline.now().uptimeNanoseconds) {
                sched_yield()
            }
        }
    }

    init(eventLoop: any EventLoop, runtime: ProxyRuntime, index: Int) throws {
        self.eventLoop = eventLoop
        self.runtime = runtime
        self.records = runtime.recorder.map(LoopRecords.init)
        self.index = index
        let (table, generation) = runtime.snapshot()
        self.services = try table.all.enumerated().map { serviceIndex, service in
            try LoopService(runtime: service, eventLoop: eventLoop, seedStream: Self.seedStream(loop: index, service: serviceIndex))
        }
        self.router = table.router
        self.forwarded = table.forwarded
        self.coreYield = CoreYield(interval: table.configuration.yieldInterval)
        self.generation = generation
        self.generator = SeededGenerator.derived(seed: 0x7265_7472_79, stream: UInt64(index))
    }

    /// Each loop draws from its own stream of the configured seed for each service.
    private static func seedStream(loop: Int, service: Int) -> UInt64 {
        UInt64(loop) &* 0x9E37_79B9 &+ UInt64(service)
    }

    /// Takes up the runtime's services, routes, trusted proxies and yield interval if a reload changed
    /// them: a service started gets its view on this loop, a retired one closes its idle connections.
    func refreshIfReloaded() {
        guard self.runtime.generation != self.generation else { return }
        let (table, generation) = self.runtime.snapshot()
        for serviceIndex in self.services.count..<table.all.count {
            do {
                self.services.append(
                    try LoopService(runtime: table.all[serviceIndex], eventLoop: self.eventLoop, seedStream: Self.seedStream(loop: self.index, service: serviceIndex))
                )
            } catch {
                // A reload takes only a configuration free of problems, whose pickers all build.
                preconditionFailure("service \(table.all[serviceIndex].settings.name) was started with a picker that does not build: \(error)")
            }
        }
        let running = Set(table.running)
        for (serviceIndex, service) in self.services.enumerated() where !service.isRetired && !running.contains(serviceIndex) {
            service.retire()
        }
        self.router = table.router
        self.forwarded = table.forwarded
        self.coreYield.retime(table.configuration.yieldInterval)
        self.generation = generation
    }

    /// Starts trimming the idle upstream connections (past their timeout, beyond `max-idle`) once a
    /// second, and taking up changes to the backend lists on a loop that serves no requests.
    func start() {
        self.sweep = self.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) {
            let now = NIODeadline.now().uptimeNanoseconds
            self.refreshIfReloaded()
            for service in self.services {
                service.refreshIfChanged()
                for backend in service.backends { backend.pool.sweep(nowNanos: now) }
            }
            self.records?.flush()
            self.start()
        }
    }

    /// Stops the sweep and closes every idle upstream connection.
    func stop() {
        self.sweep?.cancel()
        self.sweep = nil
        for service in self.services {
            for backend in service.backends { backend.pool.closeAll() }
        }
        if let records = self.records { records.recorder.flush(records) }
    }

    /// A request id unique in practice: 64 random bits (sent in hex), from this loop's generator (seeded
    /// from the system's randomness once, instead of a system call per request).
    func newRequestID() -> UInt64 {
        self.requestIDs.next()
    }
}

extension LoopContext {
    /// Decides what follows `failure` of attempt number `attempt` of a `method` request to `service`,
    /// by the service's retry policy and this loop's retry budget (``RetryPolicy/nextAttempt(after:method:attempt:canReplay:budget:holdsRetry:using:)``).
    func nextStep(
        after failure: AttemptFailure,
        service: Int,
        method: String,
        attempt: Int,
        canReplay: Bool,
        holdsRetry: inout Bool
    ) -> NextAttempt {
        self.services[service].tunables.retries.nextAttempt(
            after: failure,
            method: method,
            attempt: attempt,
            canReplay: canReplay,
            budget: &self.services[service].retryBudget,
            holdsRetry: &holdsRetry,
            using: &self.generator
        )
    }
}

@available(*, unavailable)
extension LoopContext: Sendable {}
