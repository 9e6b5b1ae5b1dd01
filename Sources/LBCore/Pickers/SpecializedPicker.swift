/// A picker that is a concrete type around a generic core (``LeastLoaded``, ``PowerOfChoices``).
///
/// The proxy and the simulator hold pickers as `any Picker`. When the value in that existential is a
/// generic type such as `LeastLoaded<InFlightLoad>`, its `pick` runs as unspecialized generic code:
/// every ``LoadSignal`` call and every comparison of a `Metric` goes through witness tables, which
/// measured at 35–50 ns per backend examined. A concrete type whose methods forward to the core lets
/// the optimizer specialize the core for its signal, so each algorithm gets straight-line code.
public protocol SpecializedPicker: Picker {
    /// The generic picker that does the work.
    associatedtype Core: Picker
    /// The core, for the forwarding methods below.
    var core: Core { get set }
}

extension SpecializedPicker {
    public mutating func rebuild(_ backends: [Backend]) {
        self.core.rebuild(backends)
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        self.core.pick(request)
    }

    public mutating func requestFinished(on state: BackendState, latency: Duration, now: Instant) {
        self.core.requestFinished(on: state, latency: latency, now: now)
    }
}
