/// What a run that keeps no row per request stores instead (the `totals` tables, DESIGN §5): the
/// figures `lbctl report` computes from the rows, counted as the run went, so that its report and its
/// comparisons with other runs read as if it had kept them.
///
/// Times and latencies are microseconds, taken as the rows would have them (`done_us − intended_us`,
/// each truncated to the microsecond). The run's latencies are kept as histograms: the percentiles read
/// from them are exact up to the histogram's resolution (3 significant digits), the means exact. A
/// backend's part may have no buckets (the simulator keeps its counts and latency sum only).
public struct RunTotals: Sendable, Hashable {
    /// The measured window the figures count (requests due in it; proxy rows received in it).
    public var window: ClosedRange<Int64>
    /// The whole run's figures (``Part/backendID`` `nil`).
    public var run: Part
    /// Each backend's figures: the requests it served (as `requests.backend_id` would name it).
    public var backends: [Part]
    /// Requests that failed or got a 5xx, by kind (`timeout`, `status 503`, …).
    public var errorsByKind: [String: Int]
    /// Proxy rows in the window, and the sum of their attempts beyond the first.
    public var proxyRequests: Int
    public var retries: Int
    /// The figures a report computes from rows grouped by second or by key, computed the same way.
    public var imbalancePerSecond: Double?
    public var remappedOnAdd: Double?
    public var remappedOnRemove: Double?

    /// Totals with every field given.
    public init(
        window: ClosedRange<Int64>,
        run: Part,
        backends: [Part],
        errorsByKind: [String: Int],
        proxyRequests: Int,
        retries: Int,
        imbalancePerSecond: Double?,
        remappedOnAdd: Double?,
        remappedOnRemove: Double?
    ) {
        self.window = window
        self.run = run
        self.backends = backends
        self.errorsByKind = errorsByKind
        self.proxyRequests = proxyRequests
        self.retries = retries
        self.imbalancePerSecond = imbalancePerSecond
        self.remappedOnAdd = remappedOnAdd
        self.remappedOnRemove = remappedOnRemove
    }

    /// The figures of the run or of one backend.
    public struct Part: Sendable, Hashable {
        /// The backend's id in the run, or `nil` for the whole run.
        public var backendID: Int?
        /// Requests due in the window (served by the backend, for a backend).
        public var requests: Int
        /// Of them, those that got a response.
        public var responses: Int
        /// Of them, those that failed or got a 5xx.
        public var errors: Int
        /// Latency from the intended send, and from the actual send, of the responses.
        public var corrected: Latency
        public var service: Latency

        /// A part with every field given.
        public init(backendID: Int?, requests: Int, responses: Int, errors: Int, corrected: Latency, service: Latency) {
            self.backendID = backendID
            self.requests = requests
            self.responses = responses
            self.errors = errors
            self.corrected = corrected
            self.service = service
        }
    }

    /// A latency distribution: its sum (for the exact mean) and its histogram.
    public struct Latency: Sendable, Hashable {
        /// The sum of the latencies, in microseconds.
        public var sumMicros: Int64
        /// The histogram's non-empty buckets in ascending order: the highest latency a bucket stands
        /// for (microseconds), and how many latencies fell in it.
        public var buckets: [Bucket]

        /// A distribution with every field given.
        public init(sumMicros: Int64, buckets: [Bucket]) {
            self.sumMicros = sumMicros
            self.buckets = buckets
        }

        /// The latencies counted.
        public var count: Int { self.buckets.reduce(0) { $0 + $1.count } }

        /// The latency at nearest rank `rank` (1-based), as the bucket holding it stands for it.
        public func value(atRank rank: Int) -> Int64? {
            var seen = 0
            for bucket in self.buckets {
                seen += bucket.count
                if seen >= rank { return bucket.valueMicros }
            }
            return nil
        }

        /// The latency at `percent` (0–100) by nearest rank, as `lbctl report` takes percentiles of
        /// rows: the value at rank ⌈count × percent / 100⌉ (at least 1); `nil` when nothing was counted.
        public func value(atPercentile percent: Double) -> Int64? {
            let count = self.count
            guard count > 0 else { return nil }
            return self.value(atRank: max(1, Int((Double(count) * percent / 100).rounded(.up))))
        }
    }

    /// One histogram bucket.
    public struct Bucket: Sendable, Hashable {
        public var valueMicros: Int64
        public var count: Int

        public init(valueMicros: Int64, count: Int) {
            self.valueMicros = valueMicros
            self.count = count
        }
    }
}

/// The share of keys a membership change moved to another backend, as `lbctl report` defines it:
/// each key's backend on either side of the change is the one that served most of its requests there
/// (the lowest id on a tie), and keys seen on both sides count.
public enum KeyRemap {
    /// How long after a change the proxy is given to apply it before requests count on its far side.
    public static let settleMicros: Int64 = 1_000_000

    /// The share of the keys of both `before` and `after` (key → backend id → requests) whose backend
    /// differs; `nil` without such keys.
    public static func share(before: [Int: [Int: Int]], after: [Int: [Int: Int]]) -> Double? {
        var keys = 0
        var moved = 0
        for (key, counts) in before {
            guard let later = after[key], let from = Self.majority(counts), let to = Self.majority(later) else { continue }
            keys += 1
            if from != to { moved += 1 }
        }
        return keys > 0 ? Double(moved) / Double(keys) : nil
    }

    /// The backend that served most of the requests, the lowest id on a tie.
    static func majority(_ counts: [Int: Int]) -> Int? {
        counts.min { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }?.key
    }
}
