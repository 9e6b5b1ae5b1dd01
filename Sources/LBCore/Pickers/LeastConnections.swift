/// Fewest in-flight requests per unit of weight (`least-connections`; HAProxy's `leastconn`, nginx's
/// `least_conn`, the least-pending-work heap of GoLoad).
///
/// The backend with the smallest inFlight/weight among the eligible ones is chosen; several with the
/// same smallest value are chosen between uniformly at random, so that idle backends share the first
/// requests instead of the first backend in the list taking them all. In-flight counts are the shared
/// ones in ``BackendState``, so the choice is correct while other event loops route concurrently.
/// O(n) per pick.
public struct LeastConnections: SpecializedPicker {
    public var algorithm: Algorithm { .leastConnections }
    public var core: LeastLoaded<InFlightLoad>

    /// A least-connections picker whose tie-breaks are determined by `seed`.
    public init(seed: UInt64 = 0) {
        self.core = LeastLoaded<InFlightLoad>(algorithm: .leastConnections, signal: InFlightLoad(), seed: seed)
    }
}

/// In-flight requests divided by weight: the signal of ``LeastConnections`` and ``PowerOfTwoChoices``.
public struct InFlightLoad: LoadSignal {
    /// The in-flight signal; it has no parameters.
    public init() {}

    public func load(of backend: Backend, now: Instant) -> Double {
        Double(backend.state.inFlight) / backend.weight
    }
}
