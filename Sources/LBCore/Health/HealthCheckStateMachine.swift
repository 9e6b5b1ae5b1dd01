/// The active health state of one backend, as HAProxy keeps it: a pure machine fed with probe results,
/// returning what to do next.
///
/// HAProxy's `health` counter runs from 0 to rise + fall − 1; the backend is up while it is ≥ rise.
/// A success while down raises it by one and, on reaching `rise`, brings the backend up at full health;
/// a failure while down resets it to 0. A failure while up lowers it by one and, below `rise`, takes the
/// backend down at 0; a success while up restores full health. So from steady states a backend goes
/// down after exactly `fall` consecutive failures and comes up after exactly `rise` consecutive
/// successes, and an isolated blip in either direction is absorbed.
///
/// The executor (the proxy's health checker, or the simulator) asks ``probeDue(now:)`` at
/// ``nextProbeAt``, sends a probe with the deadline it is given, and reports one of
/// ``probeSucceeded(now:)``, ``probeFailed(now:)`` or ``probeTimedOut(now:)``. Probes start every
/// `interval` measured from the previous start, so with `timeout ≤ interval` a dead backend is marked
/// down within fall × interval of its first failed probe.
public struct HealthCheckStateMachine: Sendable {
    /// Whether the backend takes traffic as far as active checks are concerned.
    public enum Status: Sendable, Hashable {
        /// Enough recent probes succeeded.
        case up
        /// Enough recent probes failed.
        case down
    }

    /// Where the backend starts, as HAProxy's `init-state`.
    public enum InitialState: Sendable, Hashable {
        /// Up, needing `fall` failures to go down.
        case fullyUp
        /// Up, but the first failure takes it down (HAProxy's default for a new server).
        case up
        /// Down, but the first success brings it up.
        case down
        /// Down, needing `rise` successes to come up (a backend that registers itself).
        case fullyDown
    }

    /// A change of status the executor must apply and record.
    public enum Transition: Sendable, Hashable {
        /// The backend came up: admit it (and start slow start, if configured).
        case wentUp
        /// The backend went down: stop sending it requests.
        case wentDown
    }

    /// What the executor does when a probe is due.
    public enum ProbeDueAction: Sendable, Hashable {
        /// Send a probe now; it fails if not answered by `deadline`.
        case sendProbe(deadline: Instant)
        /// A probe is already in flight (or not yet due): wait for its result or for `until`.
        case wait(until: Instant)
    }

    /// What the executor does after a probe's result.
    public struct ProbeResultAction: Sendable, Hashable {
        /// A change of status to apply, if any.
        public var transition: Transition?
        /// When the next probe is due.
        public var nextProbeAt: Instant

        /// An action applying `transition`, if any, and probing next at `nextProbeAt`.
        public init(transition: Transition?, nextProbeAt: Instant) {
            self.transition = transition
            self.nextProbeAt = nextProbeAt
        }
    }

    private enum ProbeState: Sendable, Hashable {
        /// Waiting for the next probe, due at the given time.
        case idle(nextAt: Instant)
        /// A probe started at the given time awaits its result.
        case inFlight(startedAt: Instant)
    }

    /// The configuration the machine runs with.
    public let configuration: HealthCheckConfiguration
    private var health: Int
    private var probe: ProbeState
    /// The current status.
    public private(set) var status: Status
    /// How many probes were started; the executor may use it to tell probes apart.
    public private(set) var probesSent = 0

    /// A machine in `initialState` whose first probe is due at `now`.
    public init(configuration: HealthCheckConfiguration, initialState: InitialState = .up, now: Instant) {
        self.configuration = configuration
        let top = configuration.rise + configuration.fall - 1
        switch initialState {
        case .fullyUp: (self.health, self.status) = (top, .up)
        case .up: (self.health, self.status) = (configuration.rise, .up)
        case .down: (self.health, self.status) = (configuration.rise - 1, .down)
        case .fullyDown: (self.health, self.status) = (0, .down)
        }
        self.probe = .idle(nextAt: now)
    }

    /// When the executor should next call ``probeDue(now:)``.
    public var nextProbeAt: Instant {
        switch self.probe {
        case .idle(let nextAt): nextAt
        case .inFlight(let startedAt): startedAt + self.configuration.timeout
        }
    }

    /// The executor's timer fired: send a probe if one is due and none is in flight.
    public mutating func probeDue(now: Instant) -> ProbeDueAction {
        switch self.probe {
        case .idle(let nextAt) where now >= nextAt:
            self.probe = .inFlight(startedAt: now)
            self.probesSent += 1
            return .sendProbe(deadline: now + self.configuration.timeout)
        case .idle(let nextAt):
            return .wait(until: nextAt)
        case .inFlight(let startedAt):
            return .wait(until: startedAt + self.configuration.timeout)
        }
    }

    /// The probe in flight got the expected answer.
    public mutating func probeSucceeded(now: Instant) -> ProbeResultAction {
        let top = self.configuration.rise + self.configuration.fall - 1
        var transition: Transition?
        switch self.status {
        case .up:
            self.health = top
        case .down:
            self.health += 1
            if self.health >= self.configuration.rise {
                self.health = top
                self.status = .up
                transition = .wentUp
            }
        }
        return ProbeResultAction(transition: transition, nextProbeAt: self.finishProbe(now: now))
    }

    /// The probe in flight failed: refused, reset, or an unexpected answer.
    public mutating func probeFailed(now: Instant) -> ProbeResultAction {
        var transition: Transition?
        switch self.status {
        case .down:
            self.health = 0
        case .up:
            self.health -= 1
            if self.health < self.configuration.rise {
                self.health = 0
                self.status = .down
                transition = .wentDown
            }
        }
        return ProbeResultAction(transition: transition, nextProbeAt: self.finishProbe(now: now))
    }

    /// The probe in flight was not answered by its deadline; counts as a failure.
    public mutating func probeTimedOut(now: Instant) -> ProbeResultAction {
        self.probeFailed(now: now)
    }

    /// Ends the probe in flight and schedules the next one an interval after this one started.
    private mutating func finishProbe(now: Instant) -> Instant {
        guard case .inFlight(let startedAt) = self.probe else {
            preconditionFailure("a probe result arrived while no probe was in flight (state \(self.probe))")
        }
        let next = max(startedAt + self.configuration.interval, now)
        self.probe = .idle(nextAt: next)
        return next
    }
}
