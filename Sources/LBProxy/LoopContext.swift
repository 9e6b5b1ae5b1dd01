import LBConfig
import LBCore
import LBHTTP
import NIOCore

/// What one event loop owns (DESIGN §3): a picker per service, so a pick takes no lock, and a pool of
/// upstream connections per backend. Touched only on its loop.
final class LoopContext {
    let eventLoop: any EventLoop
    let runtime: ProxyRuntime
    private(set) var pickers: [any Picker]
    /// The retry budget of each service on this loop.
    var retryBudgets: [RetryBudget]
    /// Randomness for retry backoff.
    var generator: SeededGenerator
    private var requestIDs = SeededGenerator(seed: UInt64.random(in: .min ... .max))
    /// `pools[service][backend]`.
    let pools: [[UpstreamPool]]
    private var sweep: Scheduled<Void>?
    /// Header lines of the head being read, reused from one request to the next.
    var fields: [HTTPHeaderField] = []

    init(eventLoop: any EventLoop, runtime: ProxyRuntime, index: Int) throws {
        self.eventLoop = eventLoop
        self.runtime = runtime
        self.pickers = try runtime.services.enumerated().map { serviceIndex, service in
            var parameters = service.settings.parameters
            // Each loop draws from its own stream of the configured seed.
            parameters.seed = StableHash.combine(parameters.seed, UInt64(index) &* 0x9E37_79B9 &+ UInt64(serviceIndex))
            var picker = try service.settings.algorithm.makePicker(parameters)
            picker.rebuild(service.pickerSnapshot)
            return picker
        }
        self.retryBudgets = runtime.services.map {
            RetryBudget(share: $0.settings.retryBudget.share, minimumConcurrency: $0.settings.retryBudget.minimumConcurrency)
        }
        self.generator = SeededGenerator.derived(seed: 0x7265_7472_79, stream: UInt64(index))
        self.pools = runtime.services.map { service in
            service.backends.map { UpstreamPool(backend: $0.spec, eventLoop: eventLoop, settings: service.settings.pool) }
        }
    }

    /// Starts closing idle upstream connections past their timeout, once a second.
    func start() {
        self.sweep = self.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) {
            let now = NIODeadline.now().uptimeNanoseconds
            for pools in self.pools {
                for pool in pools { pool.closeExpired(nowNanos: now) }
            }
            self.start()
        }
    }

    /// Stops the sweep and closes every idle upstream connection.
    func stop() {
        self.sweep?.cancel()
        self.sweep = nil
        for pools in self.pools {
            for pool in pools { pool.closeAll() }
        }
    }

    /// A backend of `service` for `request`, avoiding those in `excluded` when the picker offers
    /// another within a few tries, or `nil` when none is available.
    func pick(service: Int, request: PickRequest, excluded: [Int]) -> Int? {
        var choice = self.pickers[service].pick(request)
        var tries = 1
        while let picked = choice, excluded.contains(picked), tries < 4 {
            choice = self.pickers[service].pick(request)
            tries += 1
        }
        return choice
    }

    /// A request id unique in practice: 64 random bits (sent in hex), from this loop's generator (seeded
    /// from the system's randomness once, instead of a system call per request).
    func newRequestID() -> UInt64 {
        self.requestIDs.next()
    }

    /// Tells the service's picker that a request on `backend` finished after `latency`.
    func finished(service: Int, backend: BackendState, latency: Duration, now: Instant) {
        self.pickers[service].requestFinished(on: backend, latency: latency, now: now)
    }
}

extension LoopContext {
    /// What to do after a failed attempt.
    enum NextStep {
        /// Try another backend at once: nothing reached a backend.
        case requeue
        /// Try another backend after the backoff; the retry holds a place in the budget.
        case retry(after: Duration)
        /// Answer the client.
        case giveUp
    }

    /// Decides what follows `failure` of attempt number `attempt` of a `method` request to `service`,
    /// by the service's retry policy and this loop's retry budget. `holdsRetry` says whether the failed
    /// attempt held a place in the budget (it gives it back) and becomes whether the next one does.
    func nextStep(
        after failure: AttemptFailure,
        service: Int,
        method: String,
        attempt: Int,
        canReplay: Bool,
        holdsRetry: inout Bool
    ) -> NextStep {
        let decision = self.runtime.services[service].settings.retries.decide(
            method: method,
            failure: failure,
            attempt: attempt,
            using: &self.generator
        )
        guard case .retry(let delay) = decision, canReplay else { return .giveUp }
        if !failure.requestMayHaveBeenProcessed {
            // Nothing reached the backend (the connection was refused or never made): another backend
            // at once is a requeue (Finagle's word). It adds load to no one, so only the attempt limit
            // bounds it, not the budget.
            return .requeue
        }
        if holdsRetry {
            self.retryBudgets[service].retryFinished()
            holdsRetry = false
        }
        guard self.retryBudgets[service].retryStarted() else { return .giveUp }
        holdsRetry = true
        return .retry(after: delay)
    }
}

@available(*, unavailable)
extension LoopContext: Sendable {}
