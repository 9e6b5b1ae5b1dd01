/// A per-backend number a picker compares: lower is better (DESIGN §3, tower's `Load`).
///
/// Selection and measurement are separate: ``LeastLoaded`` and ``PowerOfChoices`` only compare
/// metrics, and each signal decides what "load" means — in-flight requests (``InFlightLoad``), a
/// latency estimate (``PeakEWMALoad``), resource use (``ResourceLoad``). Every signal divides by the
/// backend's weight, so a backend of weight 2 counts as half as loaded as one of weight 1 carrying
/// the same.
public protocol LoadSignal: Sendable {
    /// The comparable cost of a backend.
    associatedtype Metric: Comparable

    /// The cost of sending one more request to `backend` at `now`.
    func load(of backend: Backend, now: Instant) -> Metric

    /// Folds a finished request into whatever the signal estimates.
    func observe(_ state: BackendState, latency: Duration, now: Instant)
}

extension LoadSignal {
    /// Signals computed from counters alone ignore completions.
    public func observe(_ state: BackendState, latency: Duration, now: Instant) {}
}
