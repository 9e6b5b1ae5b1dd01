public import Histogram
public import LBCore

/// What a load run measured: latency histograms, counts by status, errors by kind, backend shares.
///
/// Each worker keeps its own and they are added up for the progress line and the summary. Latencies
/// are in microseconds. Requests due during the warm-up are not counted here (they are still recorded
/// in the results store).
public struct LoadStatistics: Sendable {
    /// Latency as the user saw it: completion minus the time the request was due (corrected for
    /// coordinated omission).
    public var corrected: Histogram<UInt64>
    /// Service time: completion minus the time the request was actually sent.
    public var service: Histogram<UInt64>
    /// Requests sent (first byte written).
    public var sent = 0
    /// Requests sent before the end of the scheduled duration: the numerator of the achieved rate.
    public var sentInWindow = 0
    /// How late requests went out: the time from due to sent, in microseconds. The load generator's own
    /// health: when it grows, the generator (or its connection pool) cannot keep the schedule.
    public var sendLag: Histogram<UInt64>
    /// Requests that ended, with a response or an error.
    public var completed = 0
    /// Responses by HTTP status (100–599 counted in an array: a dictionary update per request showed in
    /// profiles of the closed loop).
    private var statusCounts = [Int](repeating: 0, count: 600)
    private var otherStatuses: [Int: Int] = [:]
    /// Requests without a response, by why.
    public var errors: [RequestFailure: Int] = [:]
    /// Responses by the backend named in `X-LBLab-Backend`.
    public var backends: [String: Int] = [:]
    /// Requests that found every connection busy and the pool at its limit, and so waited for one.
    public var waitedForConnection = 0
    /// The most connections open at once.
    public var peakConnections = 0
    /// Response body bytes received.
    public var bytesIn: Int64 = 0

    /// The largest latency tracked, in microseconds (one hour); longer ones count as one hour.
    public static let highestTrackableMicros: UInt64 = 3_600_000_000

    /// Empty statistics.
    public init() {
        self.corrected = Histogram(highestTrackableValue: Self.highestTrackableMicros, numberOfSignificantValueDigits: .three)
        self.service = Histogram(highestTrackableValue: Self.highestTrackableMicros, numberOfSignificantValueDigits: .three)
        self.sendLag = Histogram(highestTrackableValue: Self.highestTrackableMicros, numberOfSignificantValueDigits: .three)
    }

    /// Counts one request sent `lagMicros` after it was due.
    mutating func recordSend(lagMicros: Int64, inWindow: Bool) {
        self.sent += 1
        self.sentInWindow += inWindow ? 1 : 0
        _ = self.sendLag.record(UInt64(clamping: max(0, min(lagMicros, Int64(Self.highestTrackableMicros)))))
    }

    /// Counts one finished request.
    mutating func record(correctedMicros: Int64, serviceMicros: Int64, status: Int?, error: RequestFailure?, backend: String?, bytes: Int64) {
        self.completed += 1
        _ = self.corrected.record(UInt64(clamping: max(0, min(correctedMicros, Int64(Self.highestTrackableMicros)))))
        _ = self.service.record(UInt64(clamping: max(0, min(serviceMicros, Int64(Self.highestTrackableMicros)))))
        if let status {
            if (100..<600).contains(status) {
                self.statusCounts[status] += 1
            } else {
                self.otherStatuses[status, default: 0] += 1
            }
        }
        if let error {
            self.errors[error, default: 0] += 1
        }
        if let backend {
            self.backends[backend, default: 0] += 1
        }
        self.bytesIn += bytes
    }

    /// Responses by HTTP status.
    public var statuses: [Int: Int] {
        var statuses = self.otherStatuses
        for (status, count) in self.statusCounts.enumerated() where count > 0 {
            statuses[status] = count
        }
        return statuses
    }

    /// Requests that got a response with a status of 500 or more, or none at all.
    public var failed: Int {
        self.errors.values.reduce(0, +) + self.statusCounts[500...].reduce(0, +)
            + self.otherStatuses.filter { $0.key >= 500 }.values.reduce(0, +)
    }

    /// Adds another worker's statistics to these.
    public mutating func add(_ other: LoadStatistics) {
        self.corrected.add(other.corrected)
        self.service.add(other.service)
        self.sent += other.sent
        self.sentInWindow += other.sentInWindow
        self.sendLag.add(other.sendLag)
        self.completed += other.completed
        for index in self.statusCounts.indices {
            self.statusCounts[index] += other.statusCounts[index]
        }
        self.otherStatuses.merge(other.otherStatuses, uniquingKeysWith: +)
        self.errors.merge(other.errors, uniquingKeysWith: +)
        self.backends.merge(other.backends, uniquingKeysWith: +)
        self.waitedForConnection += other.waitedForConnection
        self.peakConnections += other.peakConnections
        self.bytesIn += other.bytesIn
    }
}
