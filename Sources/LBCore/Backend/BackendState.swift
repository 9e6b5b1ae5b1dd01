import Synchronization

/// The live, shared state of one backend: what every picker on every event loop reads at pick time.
///
/// The proxy keeps one `BackendState` per backend for the whole process (DESIGN §3): pickers live per
/// event loop and never lock, and the counters that must be global (in-flight requests, availability,
/// the latency estimate, the resource signal) are atomics here. Health and ejection change through
/// ``setHealthy(_:)``, ``setEjected(_:)`` and ``setDraining(_:)``, called by whoever runs the state
/// machines, never per request.
///
/// All loads and stores are relaxed: a pick that sees a value one request old is as good as any other
/// and costs no fence on the hot path.
public final class BackendState: Sendable {
    /// The backend's name, its identity across rebuilds and the key hash algorithms place.
    public let name: String

    private let inFlightCount = Atomic<Int>(0)
    private let flags: Atomic<UInt8>
    private let resourceBits = Atomic<UInt64>(0)
    private let resourceStampNanos = Atomic<Int64>(0)
    private let latencyBits = Atomic<UInt64>(0)
    private let latencyStampNanos = Atomic<Int64>(0)

    private static let downFlag: UInt8 = 1 << 0
    private static let ejectedFlag: UInt8 = 1 << 1
    private static let drainingFlag: UInt8 = 1 << 2

    /// Creates the state of a backend that starts healthy, not ejected and not draining.
    public init(name: String, healthy: Bool = true) {
        self.name = name
        self.flags = Atomic(healthy ? 0 : Self.downFlag)
    }

    // MARK: Availability

    /// Whether new requests may go to this backend: healthy, not ejected, not draining.
    public var isAvailable: Bool {
        self.flagBits == 0
    }

    private var flagBits: UInt8 {
        self.flags.load(ordering: .relaxed)
    }

    /// Whether active health checks currently consider the backend up.
    public var isHealthy: Bool { self.flagBits & Self.downFlag == 0 }
    /// Whether passive outlier detection has ejected the backend.
    public var isEjected: Bool { self.flagBits & Self.ejectedFlag != 0 }
    /// Whether an operator is draining the backend (no new requests, in-flight ones finish).
    public var isDraining: Bool { self.flagBits & Self.drainingFlag != 0 }

    /// Records the outcome of active health checking.
    public func setHealthy(_ healthy: Bool) { self.set(Self.downFlag, !healthy) }
    /// Records an ejection by outlier detection, or a readmission.
    public func setEjected(_ ejected: Bool) { self.set(Self.ejectedFlag, ejected) }
    /// Starts or stops draining.
    public func setDraining(_ draining: Bool) { self.set(Self.drainingFlag, draining) }

    private func set(_ flag: UInt8, _ on: Bool) {
        if on {
            self.flags.bitwiseOr(flag, ordering: .relaxed)
        } else {
            self.flags.bitwiseAnd(~flag, ordering: .relaxed)
        }
    }

    // MARK: In-flight requests

    /// Requests sent to this backend and not yet finished, across all event loops.
    public var inFlight: Int {
        self.inFlightCount.load(ordering: .relaxed)
    }

    /// Counts a request that was just sent to this backend.
    public func requestStarted() {
        self.inFlightCount.wrappingAdd(1, ordering: .relaxed)
    }

    /// Counts a request to this backend that just finished, whatever its outcome.
    public func requestFinished() {
        let previous = self.inFlightCount.wrappingSubtract(1, ordering: .relaxed).oldValue
        assert(previous > 0, "requestFinished() on \(self.name) without a matching requestStarted()")
    }

    // MARK: Resource signal

    /// The share of its resource limit the backend uses (CPU or memory, whichever is higher: 0 = idle,
    /// 1 = at its limit), as last published at most `maxAge` before `now`; `nil` when no figure has
    /// been published or the last one is older.
    ///
    /// Figures come from outside the data plane (a resource sampler, an agent), and one that stopped
    /// coming says nothing about the backend now.
    public func resourceUsage(now: Instant, maxAge: Duration) -> Double? {
        let stamp = self.resourceStampNanos.load(ordering: .relaxed)
        guard stamp != 0, now.nanoseconds &- stamp <= maxAge.nanoseconds else { return nil }
        return Double(bitPattern: self.resourceBits.load(ordering: .relaxed))
    }

    /// The last resource figure published and when, whatever its age; `nil` before the first.
    public var lastResourceUsage: (usage: Double, at: Instant)? {
        let stamp = self.resourceStampNanos.load(ordering: .relaxed)
        guard stamp != 0 else { return nil }
        return (Double(bitPattern: self.resourceBits.load(ordering: .relaxed)), Instant(nanoseconds: stamp))
    }

    /// Publishes a resource figure measured at `now` (negative figures count as 0).
    public func setResourceUsage(_ usage: Double, now: Instant) {
        self.resourceBits.store(max(0, usage).bitPattern, ordering: .relaxed)
        // A stamp of 0 means "never published"; a figure at the origin is stored as 1 ns.
        self.resourceStampNanos.store(max(1, now.nanoseconds), ordering: .relaxed)
    }

    // MARK: Latency estimate

    /// The peak-EWMA latency estimate in nanoseconds at `now`, or `nil` before the first observation.
    ///
    /// Between observations the estimate decays toward zero with time constant `decay`, as tower's and
    /// Finagle's do, so a backend that was slow once and then left idle is tried again eventually.
    public func latencyEstimate(now: Instant, decay: Duration) -> Double? {
        let stamp = self.latencyStampNanos.load(ordering: .relaxed)
        guard stamp != 0 else { return nil }
        let rtt = Double(bitPattern: self.latencyBits.load(ordering: .relaxed))
        let elapsed = Double(max(0, now.nanoseconds &- stamp))
        return rtt * PeakEWMAEstimate.decayFactor(elapsedNanos: elapsed, decayNanos: Double(decay.nanoseconds))
    }

    /// Folds one observed latency into the peak-EWMA estimate.
    ///
    /// Two event loops finishing requests to the same backend at the same moment may each overwrite
    /// the other's update; the estimate then misses one sample, which an estimate can afford.
    public func observeLatency(_ latency: Duration, now: Instant, decay: Duration) {
        let stamp = self.latencyStampNanos.load(ordering: .relaxed)
        let sample = Double(max(0, latency.nanoseconds))
        let next: Double
        if stamp == 0 {
            next = sample
        } else {
            let current = Double(bitPattern: self.latencyBits.load(ordering: .relaxed))
            next = PeakEWMAEstimate.update(
                current: current,
                sample: sample,
                elapsedNanos: Double(max(0, now.nanoseconds &- stamp)),
                decayNanos: Double(decay.nanoseconds)
            )
        }
        self.latencyBits.store(next.bitPattern, ordering: .relaxed)
        // A stamp of 0 means "never observed"; an observation at the origin is stored as 1 ns.
        self.latencyStampNanos.store(max(1, now.nanoseconds), ordering: .relaxed)
    }
}
