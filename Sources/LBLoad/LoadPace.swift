import LBCore
import NIOCore

/// When a worker's requests go out, for ``LoadWorker`` and ``WebSocketLoadWorker`` alike. Open loop:
/// the schedule of the worker's clients fixes when each request is due, and a timer fires at the next
/// due time. Closed loop: a request may start while the run has neither stopped nor reached its end
/// or its share of `-requests`. Used on the worker's event loop only.
struct LoadPace {
    private var schedule: ArrivalSchedule?
    private var timer: Scheduled<Void>?
    private var scheduleDone = false
    /// Closed loop: requests the worker may still start (`nil`: bounded by time only).
    private var closedLoopBudget: Int?
    private let t0Nanos: UInt64
    private let endNanos: UInt64?
    /// Set by ``stop()``: nothing more is sent.
    private(set) var stopped = false

    init(configuration: LoadConfiguration, clients: [Int], requestBudget: Int?, t0Nanos: UInt64) {
        self.t0Nanos = t0Nanos
        self.endNanos = configuration.duration.map { t0Nanos + UInt64(max(0, $0.nanoseconds)) }
        switch configuration.pacing {
        case .openLoop(let rate, let arrival):
            self.schedule = ArrivalSchedule(
                clients: clients,
                ratePerClient: rate,
                process: arrival,
                duration: configuration.duration,
                limit: requestBudget,
                seed: configuration.seed
            )
        case .closedLoop:
            self.closedLoopBudget = requestBudget
        }
    }

    /// Whether requests follow a schedule (open loop) rather than responses (closed loop).
    var isOpenLoop: Bool { self.schedule != nil }

    /// Calls `fire` on `eventLoop` at `deadline` (uptime nanoseconds), unless stopped first.
    mutating func fire(at deadline: UInt64, on eventLoop: any EventLoop, _ fire: @escaping () -> Void) {
        self.timer = eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(deadline)) { fire() }
    }

    /// Open loop: calls `fire` when the next request is due; `false` when none is left (or the run
    /// stopped), and the schedule is done.
    mutating func armNextDue(on eventLoop: any EventLoop, _ fire: @escaping () -> Void) -> Bool {
        guard !self.stopped, let due = self.schedule?.nextDueNanos else {
            self.scheduleDone = true
            return false
        }
        self.fire(at: self.t0Nanos + UInt64(due), on: eventLoop, fire)
        return true
    }

    /// Open loop: the next request due by `now`, taken off the schedule; its client and due time.
    mutating func nextDue(by now: UInt64) -> (client: Int, intendedNanos: UInt64)? {
        guard !self.stopped, let due = self.schedule?.nextDueNanos, self.t0Nanos + UInt64(due) <= now,
            let arrival = self.schedule?.next()
        else { return nil }
        return (arrival.client, self.t0Nanos + UInt64(arrival.dueNanos))
    }

    /// Closed loop: whether a request may start at `now`.
    func mayStartClosedLoop(now: UInt64) -> Bool {
        guard !self.stopped else { return false }
        if let budget = self.closedLoopBudget, budget <= 0 { return false }
        if let end = self.endNanos, now >= end { return false }
        return true
    }

    /// Closed loop: takes a request's turn at `now` if one may start.
    mutating func takeClosedLoopTurn(now: UInt64) -> Bool {
        guard self.mayStartClosedLoop(now: now) else { return false }
        if let budget = self.closedLoopBudget { self.closedLoopBudget = budget - 1 }
        return true
    }

    /// Closed loop: gives back a turn taken for a request that could not be sent.
    mutating func giveBackClosedLoopTurn() {
        if let budget = self.closedLoopBudget { self.closedLoopBudget = budget + 1 }
    }

    /// Whether no request will start any more (those started may still be on their way); the clock is
    /// read for the closed loop only.
    func isDone(now: @autoclosure () -> UInt64) -> Bool {
        self.isOpenLoop ? self.stopped || self.scheduleDone : !self.mayStartClosedLoop(now: now())
    }

    /// Stops sending, and the timer.
    mutating func stop() {
        self.stopped = true
        self.timer?.cancel()
        self.timer = nil
    }

    /// How often a worker looks for overdue requests: every tenth of the timeout, between 1 ms and
    /// 100 ms, so that a request times out between 1 and 1.1 timeouts after it was sent. One sweep
    /// replaces a timer per request, which cost more than the request in a closed loop.
    static func sweepPeriod(timeout: Duration) -> TimeAmount {
        .nanoseconds(min(max(timeout.nanoseconds / 10, 1_000_000), 100_000_000))
    }

    /// How long a connect may take: the request timeout, at most 10 s.
    static func connectTimeout(_ timeout: Duration) -> TimeAmount {
        .nanoseconds(min(timeout.nanoseconds, 10_000_000_000))
    }

    /// How long a closed-loop connection waits after a failed connect before it tries again.
    static let connectRetryPause = TimeAmount.milliseconds(10)
}
