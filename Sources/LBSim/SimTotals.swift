import DequeModule
import Histogram
import LBCore

/// The totals of a run that keeps no row per request (``RunTotals``), counted as the run goes exactly as
/// `lbctl report` would count the rows it did not keep: microseconds truncated as the rows have them,
/// the window from the `measure` phase to the `drain` phase, requests by their due time and proxy rows
/// by their arrival at the proxy.
///
/// Memory stays flat as the run grows: a histogram for the run, counts and sums per backend, the seconds whose
/// requests are still in flight, and, when the timeline changes the backends and the requests carry keys,
/// a count per key and backend between changes.
struct SimTotals {
    private let start: Int64
    private var drain: Int64?
    private var lastDone: Int64
    private var run = PartTally()
    /// The run's latencies (microseconds, 3 significant digits). Per backend, counts and the latency
    /// sum (its mean) but no histogram: no report figure needs one, and a histogram per backend, each
    /// request touching another one out of cache, took a quarter of the simulator's time at 100
    /// backends (bench/RESULTS.md).
    private var runLatency = Histogram<UInt64>(highestTrackableValue: highestTrackableMicros, numberOfSignificantValueDigits: .three)
    private var backends: [PartTally]
    private var errors: [String: Int] = [:]
    private var proxyRequests = 0
    private var retries = 0

    // The unevenness per second: requests per backend in service at the start, by second of their due
    // time. A second is counted once none of its requests is in flight and no more can be due in it.
    private let columns: [Int32]
    private let columnCount: Int
    /// Per open second, from the oldest: its requests in flight, and whether any backend served one.
    private var openSeconds = Deque<(pending: Int32, served: Bool)>()
    private var firstOpenSecond: Int64 = 0
    /// Per open second, the requests each backend in service at the start served: a ring of
    /// `ringSeconds` rows of `columnCount`, second `s` in row `s % ringSeconds`.
    private var counts: [Int32] = []
    private var ringSeconds = 0
    private var latestDueSecond: Int64 = -1
    private var ratioSum: Double = 0
    private var ratioCount = 0
    private var servedSeconds = 0
    private var lastServedRatio: Double?

    // Keys across membership changes: per stretch between changes, requests per key and backend.
    private let tracksKeys: Bool
    private var changes: [(micros: Int64, kind: String)] = []
    private var keyCounts: [[Int: [Int: Int]]] = [[:]]

    init(backends: Int, inServiceAtStart: [Int], warmupNanos: Int64, tracksKeys: Bool) {
        self.start = warmupNanos / 1_000
        self.lastDone = self.start
        self.backends = Array(repeating: PartTally(), count: backends)
        var columns = [Int32](repeating: -1, count: backends)
        for (column, index) in inServiceAtStart.enumerated() { columns[index] = Int32(column) }
        self.columns = columns
        self.columnCount = inServiceAtStart.count
        self.tracksKeys = tracksKeys
    }

    /// A request is due at `intended` (nanoseconds).
    mutating func due(_ intended: Int64) {
        let micros = intended / 1_000
        guard micros >= self.start else { return }
        let second = (micros - self.start) / 1_000_000
        if self.openSeconds.isEmpty && self.latestDueSecond < 0 { self.firstOpenSecond = second }
        while self.firstOpenSecond + Int64(self.openSeconds.count) <= second {
            if self.openSeconds.count == self.ringSeconds { self.growRing() }
            self.openSeconds.append((0, false))
        }
        self.openSeconds[Int(second - self.firstOpenSecond)].pending += 1
        if second > self.latestDueSecond {
            self.latestDueSecond = second
            self.closeSeconds()
        }
    }

    /// The client is done with a request: `backend` (an index) answered it or not (-1).
    mutating func clientDone(intended: Int64, done: Int64, status: Int?, error: RequestFailure?, backend: Int, key: Int32) {
        let due = intended / 1_000
        guard due >= self.start else { return }
        let doneMicros = done / 1_000
        self.lastDone = max(self.lastDone, doneMicros)
        let failed = error != nil || (status ?? 0) >= 500
        let latency = status != nil ? doneMicros - due : nil
        self.run.count(failed: failed, latency: latency)
        if let latency { self.runLatency.record(min(UInt64(max(0, latency)), highestTrackableMicros)) }
        if failed { self.errors[error.map(\.rawValue) ?? "status \(status ?? 0)", default: 0] += 1 }
        if backend >= 0 {
            self.backends[backend].count(failed: failed, latency: latency)
            if self.tracksKeys, key >= 0, let stretch = self.stretch(of: due) {
                self.keyCounts[stretch][Int(key), default: [:]][backend + 1, default: 0] += 1
            }
        }
        let second = (due - self.start) / 1_000_000
        let index = Int(second - self.firstOpenSecond)
        guard index >= 0, index < self.openSeconds.count else { return }
        if backend >= 0 {
            self.openSeconds[index].served = true
            let column = Int(self.columns[backend])
            if column >= 0 { self.counts[self.row(of: second) + column] += 1 }
        }
        self.openSeconds[index].pending -= 1
        if index == 0 { self.closeSeconds() }
    }

    /// The proxy is done with a request it received at `received` (nanoseconds) after `attempts`.
    mutating func proxyDone(received: Int64, attempts: Int) {
        let micros = received / 1_000
        guard micros >= self.start, micros <= (self.drain ?? .max) else { return }
        self.proxyRequests += 1
        self.retries += attempts - 1
    }

    /// The load's schedule ended at `nanos`.
    mutating func drained(at nanos: Int64) {
        self.drain = nanos / 1_000
    }

    /// A timeline step took effect (`add`, `remove`, …) at `nanos`.
    mutating func changed(_ kind: String, at nanos: Int64) {
        guard kind == "add" || kind == "remove" else { return }
        self.changes.append((nanos / 1_000, kind))
        self.keyCounts.append([:])
    }

    /// The totals, once the run is over.
    mutating func finish() -> RunTotals {
        self.latestDueSecond = .max
        self.closeSeconds(all: true)
        let end = max(self.start, self.drain ?? self.lastDone)
        let window = self.start...end
        // The last second is partial: left out when there are others.
        if self.servedSeconds > 1, let last = self.lastServedRatio {
            self.ratioSum -= last
            self.ratioCount -= 1
        }
        return RunTotals(
            window: window,
            run: self.run.part(backendID: nil, latency: self.runLatency),
            backends: self.backends.enumerated().map { $0.element.part(backendID: $0.offset + 1, latency: nil) },
            errorsByKind: self.errors,
            proxyRequests: self.proxyRequests,
            retries: self.retries,
            imbalancePerSecond: self.ratioCount > 0 ? self.ratioSum / Double(self.ratioCount) : nil,
            remappedOnAdd: self.remapped("add", window: window),
            remappedOnRemove: self.remapped("remove", window: window)
        )
    }

    // MARK: Seconds

    /// Where second `second`'s counts start in the ring.
    private func row(of second: Int64) -> Int {
        Int(second % Int64(self.ringSeconds)) * self.columnCount
    }

    /// Doubles the ring, keeping the open seconds' rows.
    private mutating func growRing() {
        let old = self.counts
        let oldSeconds = self.ringSeconds
        self.ringSeconds = max(4, oldSeconds * 2)
        self.counts = Array(repeating: 0, count: self.ringSeconds * self.columnCount)
        for offset in 0..<self.openSeconds.count {
            let second = self.firstOpenSecond + Int64(offset)
            let from = Int(second % Int64(oldSeconds)) * self.columnCount
            let to = self.row(of: second)
            for column in 0..<self.columnCount { self.counts[to + column] = old[from + column] }
        }
    }

    /// Counts the oldest seconds none of whose requests is in flight and in which no more can be due.
    private mutating func closeSeconds(all: Bool = false) {
        while let first = self.openSeconds.first, all || (first.pending == 0 && self.firstOpenSecond < self.latestDueSecond) {
            let row = self.row(of: self.firstOpenSecond)
            if first.served {
                var sum = 0
                var most: Int32 = 0
                for column in 0..<self.columnCount {
                    sum += Int(self.counts[row + column])
                    most = max(most, self.counts[row + column])
                }
                let ratio = sum > 0 ? Double(most) / (Double(sum) / Double(self.columnCount)) : nil
                if let ratio {
                    self.ratioSum += ratio
                    self.ratioCount += 1
                }
                self.servedSeconds += 1
                self.lastServedRatio = ratio
            }
            for column in 0..<self.columnCount { self.counts[row + column] = 0 }
            self.openSeconds.removeFirst()
            self.firstOpenSecond += 1
        }
    }

    // MARK: Keys

    /// The stretch between membership changes that a request due at `micros` counts in: none within a
    /// change's settling second.
    private func stretch(of micros: Int64) -> Int? {
        var index = 0
        for change in self.changes {
            if micros < change.micros { break }
            index += 1
        }
        if index > 0, micros < self.changes[index - 1].micros + KeyRemap.settleMicros { return nil }
        return index
    }

    private func remapped(_ kind: String, window: ClosedRange<Int64>) -> Double? {
        guard let index = self.changes.firstIndex(where: { $0.kind == kind }) else { return nil }
        let before = index > 0 ? self.changes[index - 1].micros + KeyRemap.settleMicros : window.lowerBound
        let after = self.changes[index].micros + KeyRemap.settleMicros
        let afterEnd = index + 1 < self.changes.count ? self.changes[index + 1].micros : window.upperBound
        guard before < self.changes[index].micros, after < afterEnd else { return nil }
        return KeyRemap.share(before: self.keyCounts[index], after: self.keyCounts[index + 1])
    }
}

/// The highest latency the run's histogram holds: one hour, in microseconds.
private let highestTrackableMicros: UInt64 = 3_600_000_000

/// The counts and the latency sum of the run or of one backend.
private struct PartTally {
    var requests = 0
    var responses = 0
    var errors = 0
    var sum: Int64 = 0

    mutating func count(failed: Bool, latency: Int64?) {
        self.requests += 1
        if failed { self.errors += 1 }
        guard let latency else { return }
        self.responses += 1
        self.sum += latency
    }

    /// Its part of the totals, with `latency`'s buckets when given (the run's).
    func part(backendID: Int?, latency histogram: Histogram<UInt64>?) -> RunTotals.Part {
        var buckets: [RunTotals.Bucket] = []
        if let histogram {
            for value in histogram.recordedValues() {
                let top = min(histogram.highestEquivalentForValue(value.value), histogram.maxRecorded)
                buckets.append(RunTotals.Bucket(valueMicros: Int64(top), count: Int(value.count)))
            }
        }
        let latency = RunTotals.Latency(sumMicros: self.sum, buckets: buckets)
        return RunTotals.Part(backendID: backendID, requests: self.requests, responses: self.responses, errors: self.errors, corrected: latency, service: latency)
    }
}
