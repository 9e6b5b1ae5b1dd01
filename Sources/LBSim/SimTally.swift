public import Histogram

/// The figures of a simulated run, counted as it goes whether or not it keeps a row per request: what
/// `lbctl sim` prints, what the queueing-theory checks compare, and what a run without records keeps.
///
/// Requests count when they were due after the warm-up (the measured window, as `lbctl report` takes
/// it). Latencies are in virtual nanoseconds: corrected (from the due time to the answer at the client)
/// and service (from the proxy's pick to the answer there).
public struct SimTally: Sendable {
    /// Requests due in the measured window.
    public private(set) var requests = 0
    /// Of them, answered 2xx.
    public private(set) var succeeded = 0
    /// Of them, failed (an error, or a 5xx).
    public private(set) var failed = 0
    /// Requests in the window each backend answered.
    public private(set) var perBackend: [Int]
    /// The sum of the window's corrected latencies, for an exact mean.
    public private(set) var latencySumNanos: Double = 0
    /// The sum of the window's answered requests' own service at their backends (CPU work and latency),
    /// so that the mean wait (latency less service) is exact too.
    public private(set) var serviceSumNanos: Double = 0
    /// Answered requests of the window.
    public private(set) var answered = 0
    /// Corrected latencies of the window's answered requests (nanoseconds, 3 significant digits): one
    /// histogram for the run, which stays in a core's cache; per backend, the sums below (a histogram
    /// per backend would not, with thousands of them). Empty in a run that stores ``RunTotals``, whose
    /// histograms (microseconds, as the rows would have them) stand in for it.
    public private(set) var latency: Histogram<UInt64>
    private let recordsHistogram: Bool
    /// The sum of the corrected latencies of the requests each backend answered in the window.
    public private(set) var latencySumPerBackend: [Double]
    /// The sum of the requests in flight at each backend over the samples in the window, and how many
    /// samples: their mean is the time-average number in the system.
    public private(set) var inFlightSum: Double = 0
    public private(set) var inFlightSamples = 0
    /// Where the measured window starts.
    public let warmupNanos: Int64
    /// Batch means of the corrected latency (nanoseconds), one per `batchSize` answered requests in the
    /// order they were answered, when `batchSize` is positive: the spread of these estimates the
    /// standard error of the mean of a correlated series (the method of batch means).
    public private(set) var batchMeans: [Double] = []
    /// Answered requests per batch; 0 keeps no batches.
    public var batchSize = 0
    private var batchSum: Double = 0
    private var batchFill = 0

    /// The highest latency a histogram holds: one hour.
    static let highestTrackable: UInt64 = 3_600_000_000_000

    init(backends: Int, warmupNanos: Int64, histogram: Bool = true) {
        self.recordsHistogram = histogram
        self.perBackend = Array(repeating: 0, count: backends)
        self.latency = Histogram(highestTrackableValue: Self.highestTrackable, numberOfSignificantValueDigits: .three)
        self.latencySumPerBackend = Array(repeating: 0, count: backends)
        self.warmupNanos = warmupNanos
    }

    /// The mean corrected latency of the requests backend `index` answered in the window, in
    /// nanoseconds.
    public func meanLatencyNanos(backend index: Int) -> Double {
        self.perBackend[index] > 0 ? self.latencySumPerBackend[index] / Double(self.perBackend[index]) : 0
    }

    /// The mean corrected latency of the answered requests in the window, in nanoseconds.
    public var meanLatencyNanos: Double {
        self.answered > 0 ? self.latencySumNanos / Double(self.answered) : 0
    }

    /// The standard error of ``meanLatencyNanos`` by batch means (needs at least two batches).
    public var meanLatencyStandardError: Double? {
        let k = Double(self.batchMeans.count)
        guard k >= 2 else { return nil }
        let mean = self.batchMeans.reduce(0, +) / k
        let variance = self.batchMeans.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (k - 1)
        return (variance / k).squareRoot()
    }

    /// The time-average of the requests in flight per backend, from the samples in the window.
    public var meanInFlight: Double {
        self.inFlightSamples > 0 ? self.inFlightSum / Double(self.inFlightSamples) : 0
    }

    /// The mean time answered requests of the window spent other than in their own service (queueing,
    /// delays), in nanoseconds.
    public var meanWaitNanos: Double {
        self.answered > 0 ? (self.latencySumNanos - self.serviceSumNanos) / Double(self.answered) : 0
    }

    @inline(__always)
    mutating func count(intended: Int64, done: Int64, status: Int?, failedWithoutAnswer: Bool, backend: Int, serviceNanos: Int64) {
        guard intended >= self.warmupNanos else { return }
        self.requests += 1
        if failedWithoutAnswer || (status ?? 0) >= 500 {
            self.failed += 1
        } else if let status, (200..<300).contains(status) {
            self.succeeded += 1
        }
        guard !failedWithoutAnswer else { return }
        let latency = max(0, done - intended)
        self.latencySumNanos += Double(latency)
        self.serviceSumNanos += Double(serviceNanos)
        if self.batchSize > 0 {
            self.batchSum += Double(latency)
            self.batchFill += 1
            if self.batchFill == self.batchSize {
                self.batchMeans.append(self.batchSum / Double(self.batchSize))
                (self.batchSum, self.batchFill) = (0, 0)
            }
        }
        self.answered += 1
        if self.recordsHistogram { self.latency.record(min(UInt64(latency), Self.highestTrackable)) }
        if backend >= 0 {
            self.perBackend[backend] += 1
            self.latencySumPerBackend[backend] += Double(latency)
        }
    }

    mutating func countInFlight(_ inFlight: Int, at time: Int64) {
        guard time >= self.warmupNanos else { return }
        self.inFlightSum += Double(inFlight)
        self.inFlightSamples += 1
    }
}
