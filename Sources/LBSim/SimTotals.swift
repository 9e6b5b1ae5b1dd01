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
    /// The open seconds, from `firstOpenSecond`: `openCount` of them.
    private let ring: SecondRing
    private var firstOpenSecond: Int64 = 0
    private var openCount = 0
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
        self.ring = SecondRing(columns: inServiceAtStart.count)
        self.tracksKeys = tracksKeys
    }

    /// A request is due at `intended` (nanoseconds).
    mutating func due(_ intended: Int64) {
        let micros = intended / 1_000
        guard micros >= self.start else { return }
        let second = (micros - self.start) / 1_000_000
        if self.openCount == 0 && self.latestDueSecond < 0 { self.firstOpenSecond = second }
        while self.firstOpenSecond + Int64(self.openCount) <= second {
            if self.openCount == self.ring.seconds { self.ring.grow(first: self.firstOpenSecond, open: self.openCount) }
            self.ring.open(self.firstOpenSecond + Int64(self.openCount))
            self.openCount += 1
        }
        self.ring.pending[self.ring.slot(of: second)] += 1
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
        let index = second - self.firstOpenSecond
        guard index >= 0, index < self.openCount else { return }
        let slot = self.ring.slot(of: second)
        if backend >= 0 {
            self.ring.served[slot] = true
            let column = Int(self.columns[backend])
            if column >= 0 { self.ring.counts[slot * self.ring.columns + column] += 1 }
        }
        self.ring.pending[slot] -= 1
        if index == 0 && self.ring.pending[slot] == 0 { self.closeSeconds() }
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

    /// Counts the oldest seconds none of whose requests is in flight and in which no more can be due.
    private mutating func closeSeconds(all: Bool = false) {
        while self.openCount > 0 {
            let slot = self.ring.slot(of: self.firstOpenSecond)
            guard all || (self.ring.pending[slot] == 0 && self.firstOpenSecond < self.latestDueSecond) else { break }
            if self.ring.served[slot] {
                var sum = 0
                var most: Int32 = 0
                let row = self.ring.counts + slot * self.ring.columns
                for column in 0..<self.ring.columns {
                    sum += Int(row[column])
                    most = max(most, row[column])
                }
                let ratio = sum > 0 ? Double(most) / (Double(sum) / Double(self.ring.columns)) : nil
                if let ratio {
                    self.ratioSum += ratio
                    self.ratioCount += 1
                }
                self.servedSeconds += 1
                self.lastServedRatio = ratio
            }
            self.openCount -= 1
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

/// Per open second: its requests in flight, whether any backend served one, and the requests each
/// backend in service at the start served (a row of `columns`); second `s` in slot `s % seconds`.
///
/// In memory of its own, as ``SlotTable``'s, since every request writes to it twice: owned by one run's
/// totals and never shared.
private final class SecondRing {
    let columns: Int
    /// Slots, a power of two.
    private(set) var seconds = 4
    private(set) var pending: UnsafeMutablePointer<Int32>
    private(set) var served: UnsafeMutablePointer<Bool>
    private(set) var counts: UnsafeMutablePointer<Int32>

    init(columns: Int) {
        self.columns = columns
        self.pending = .allocate(capacity: self.seconds)
        self.served = .allocate(capacity: self.seconds)
        self.counts = .allocate(capacity: self.seconds * max(1, columns))
    }

    deinit {
        self.pending.deallocate()
        self.served.deallocate()
        self.counts.deallocate()
    }

    func slot(of second: Int64) -> Int {
        Int(second & Int64(self.seconds - 1))
    }

    /// Clears `second`'s slot for its first request.
    func open(_ second: Int64) {
        let slot = self.slot(of: second)
        self.pending[slot] = 0
        self.served[slot] = false
        (self.counts + slot * self.columns).update(repeating: 0, count: self.columns)
    }

    /// Doubles the slots, keeping the `open` seconds from `first`.
    func grow(first: Int64, open: Int) {
        let (pending, served, counts) = (self.pending, self.served, self.counts)
        let oldSeconds = self.seconds
        self.seconds *= 2
        self.pending = .allocate(capacity: self.seconds)
        self.served = .allocate(capacity: self.seconds)
        self.counts = .allocate(capacity: self.seconds * max(1, self.columns))
        for second in first..<(first + Int64(open)) {
            let from = Int(second & Int64(oldSeconds - 1))
            let to = self.slot(of: second)
            self.pending[to] = pending[from]
            self.served[to] = served[from]
            (self.counts + to * self.columns).update(from: counts + from * self.columns, count: self.columns)
        }
        pending.deallocate()
        served.deallocate()
        counts.deallocate()
    }
}

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
