/// Latency-aware power of two choices (`peak-ewma`; Finagle's and Linkerd's `PeakEwma`, tower's
/// `load::PeakEwma` under `p2c`).
///
/// The cost of a backend is its peak-EWMA latency estimate (``PeakEWMAEstimate``) times its in-flight
/// requests plus one, divided by its weight: a slow backend, or one with a queue, costs more. Two
/// eligible backends are drawn and the cheaper one is taken. The estimate reacts to a slowdown at once
/// (a sample above it replaces it) and forgets with time constant `decay` (τ), so a backend that was
/// slow and then idle is tried again after a while. Backends not yet measured count as
/// `defaultLatency`. O(d) per pick.
public struct PeakEWMA: SpecializedPicker {
    public var algorithm: Algorithm { .peakEWMA }
    public var core: PowerOfChoices<PeakEWMALoad>

    /// A peak-EWMA picker with decay time `decay` (τ) and the latency assumed for unmeasured backends.
    public init(
        decay: Duration = .seconds(10),
        defaultLatency: Duration = .milliseconds(1),
        draws: Int = 2,
        seed: UInt64 = 0
    ) {
        self.core = PowerOfChoices<PeakEWMALoad>(
            algorithm: .peakEWMA,
            signal: PeakEWMALoad(decay: decay, defaultLatency: defaultLatency),
            draws: draws,
            seed: seed
        )
    }
}

/// Peak-EWMA latency × (in-flight + 1) / weight: the signal of ``PeakEWMA``.
public struct PeakEWMALoad: LoadSignal {
    /// τ: how fast the estimate forgets.
    public let decay: Duration
    /// The latency assumed for a backend never measured.
    public let defaultLatency: Duration

    /// The peak-EWMA signal with decay time `decay` and the latency assumed before a first sample.
    public init(decay: Duration, defaultLatency: Duration) {
        self.decay = decay
        self.defaultLatency = defaultLatency
    }

    public func load(of backend: Backend, now: Instant) -> Double {
        let latency =
            backend.state.latencyEstimate(now: now, decay: self.decay) ?? Double(self.defaultLatency.nanoseconds)
        return latency * Double(backend.state.inFlight + 1) / backend.weight
    }

    public func observe(_ state: BackendState, latency: Duration, now: Instant) {
        state.observeLatency(latency, now: now, decay: self.decay)
    }
}
