/// When passive outlier detection ejects a backend (Envoy's `outlier_detection`).
public struct OutlierDetectionConfiguration: Sendable, Hashable, Codable {
    /// Consecutive failed requests (5xx from the backend, or a failed connection) that eject it.
    public var consecutiveFailures: Int
    /// The first ejection lasts this long; the k-th in a row lasts k times as long.
    public var baseEjectionTime: Duration
    /// No ejection lasts longer than this.
    public var maxEjectionTime: Duration
    /// The largest share of the backends that may be ejected at once (0...1). An ejection that would
    /// exceed it is refused and counted, so detection can never empty the pool.
    public var maxEjectedShare: Double
    /// Each full period of this length a backend spends admitted forgives one past ejection, so an
    /// old incident stops lengthening new ejections.
    public var forgiveAfter: Duration

    /// Envoy's defaults, except the ejected share: 5 failures, 30 s base, 300 s cap, at most half the
    /// backends ejected, one ejection forgiven per 10 s admitted.
    public init(
        consecutiveFailures: Int = 5,
        baseEjectionTime: Duration = .seconds(30),
        maxEjectionTime: Duration = .seconds(300),
        maxEjectedShare: Double = 0.5,
        forgiveAfter: Duration = .seconds(10)
    ) {
        self.consecutiveFailures = consecutiveFailures
        self.baseEjectionTime = baseEjectionTime
        self.maxEjectionTime = maxEjectionTime
        self.maxEjectedShare = maxEjectedShare
        self.forgiveAfter = forgiveAfter
    }
}

/// Passive outlier detection over a set of backends: a pure machine fed with request outcomes,
/// returning ejections and readmissions for the executor to apply (`BackendState.setEjected`) and record.
///
/// A backend is ejected after `consecutiveFailures` failures in a row; its k-th ejection (counting
/// those not yet forgiven) lasts min(k × base, max). Never more than ⌊maxEjectedShare × n⌋ of the n
/// backends are out at once. The executor calls ``readmitDue(now:)`` at ``nextReadmissionAt``.
public struct OutlierDetector<ID: Hashable & Sendable>: Sendable {
    /// What the executor does after an outcome.
    public enum Action: Sendable, Hashable {
        /// Nothing changes.
        case none
        /// Eject the backend until the given time.
        case eject(ID, until: Instant)
        /// The backend reached the threshold but ejecting it would exceed the max ejected share.
        case ejectionRefused(ID)
    }

    private struct Record: Sendable {
        var consecutiveFailures = 0
        var timesEjected = 0
        var ejectedUntil: Instant?
        var admittedSince: Instant?
    }

    /// The configuration the detector runs with. It may change while it runs (a reload): what it has
    /// counted stays, a backend ejected now stays out until its time, and the next failure is judged,
    /// and the next ejection timed, by the new one.
    public var configuration: OutlierDetectionConfiguration
    private var records: [ID: Record] = [:]

    /// A detector over no backends yet.
    public init(configuration: OutlierDetectionConfiguration) {
        self.configuration = configuration
    }

    /// Starts watching a backend (admitted).
    public mutating func backendAdded(_ id: ID, now: Instant) {
        self.records[id] = Record(admittedSince: now)
    }

    /// Stops watching a backend.
    public mutating func backendRemoved(_ id: ID) {
        self.records[id] = nil
    }

    /// Backends currently ejected.
    public var ejectedCount: Int { self.records.values.count { $0.ejectedUntil != nil } }

    /// Whether `id` is currently ejected.
    public func isEjected(_ id: ID) -> Bool { self.records[id]?.ejectedUntil != nil }

    /// How many ejections of `id` currently count toward the length of its next one.
    public func timesEjected(_ id: ID) -> Int { self.records[id]?.timesEjected ?? 0 }

    /// A request to `id` succeeded: its failure run ends.
    public mutating func requestSucceeded(_ id: ID) {
        self.records[id]?.consecutiveFailures = 0
    }

    /// A request to `id` failed (5xx, connection failure, or timeout).
    public mutating func requestFailed(_ id: ID, now: Instant) -> Action {
        guard var record = self.records[id], record.ejectedUntil == nil else { return .none }
        record.consecutiveFailures += 1
        defer { self.records[id] = record }
        guard record.consecutiveFailures >= self.configuration.consecutiveFailures else { return .none }
        let allowed = Int((self.configuration.maxEjectedShare * Double(self.records.count)).rounded(.down))
        guard self.ejectedCount < allowed else {
            record.consecutiveFailures = 0
            return .ejectionRefused(id)
        }
        if let since = record.admittedSince, self.configuration.forgiveAfter > .zero {
            let forgiven = Int((now - since) / self.configuration.forgiveAfter)
            record.timesEjected = max(0, record.timesEjected - forgiven)
        }
        record.timesEjected += 1
        record.consecutiveFailures = 0
        record.admittedSince = nil
        let length = min(self.configuration.baseEjectionTime * record.timesEjected, self.configuration.maxEjectionTime)
        let until = now + length
        record.ejectedUntil = until
        return .eject(id, until: until)
    }

    /// When the earliest ejection ends, if any backend is ejected.
    public var nextReadmissionAt: Instant? {
        self.records.values.compactMap(\.ejectedUntil).min()
    }

    /// Readmits every backend whose ejection has ended by `now`, and returns them.
    public mutating func readmitDue(now: Instant) -> [ID] {
        var readmitted: [ID] = []
        for (id, record) in self.records {
            if let until = record.ejectedUntil, until <= now {
                self.records[id]?.ejectedUntil = nil
                self.records[id]?.admittedSince = now
                readmitted.append(id)
            }
        }
        return readmitted
    }
}
