import Foundation
public import LBConfig
public import LBExperiment
import LBStore

/// Confidence intervals over repeats, and the paired differences between algorithms.
///
/// Repeat k of every algorithm runs with the same seed (the scenario's, moved by k): the same
/// arrivals, keys and client addresses. So two algorithms are compared repeat by repeat, the k-th run
/// of one with seed s against the k-th of the other with seed s, and what a repeat shares (its draws,
/// and much of the machine's state at the time) cancels out of the difference.
extension Comparison {
    /// How runs are paired across algorithms: their seed, and which run of that seed they are in the
    /// file (a scenario run twice into one file has two runs of each seed).
    struct PairKey: Hashable, Comparable {
        var seed: UInt64
        var ordinal: Int

        static func < (lhs: PairKey, rhs: PairKey) -> Bool {
            (lhs.seed, lhs.ordinal) < (rhs.seed, rhs.ordinal)
        }
    }

    /// The resampling behind every interval: 10,000 resamples, seeded by what the interval is of, so
    /// that the same runs always give the same intervals.
    static func bootstrap(_ subject: String, confidence: Double = 0.95) -> Bootstrap {
        // FNV-1a of the subject.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in subject.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Bootstrap(confidence: confidence, resamples: 10_000, seed: hash)
    }

    /// `metric` of each run of `label` by its pairing key.
    func pairedValues(_ metric: ExpectedOutcome.Metric, _ label: String, point: String? = nil) -> [PairKey: Double] {
        guard let group = self.group(label, point: point) else { return [:] }
        var seen: [UInt64: Int] = [:]
        var values: [PairKey: Double] = [:]
        for report in group.reports.sorted(by: { $0.run.id < $1.run.id }) {
            let seed = report.run.seed ?? UInt64(report.run.repeat)
            let ordinal = seen[seed, default: 0]
            seen[seed] = ordinal + 1
            if let value = Self.value(metric, of: report) { values[PairKey(seed: seed, ordinal: ordinal)] = value }
        }
        return values
    }

    /// The mean of `metric` over the runs of `label` with its 95% interval; `nil` with fewer than two
    /// runs that have it.
    public func interval(_ metric: ExpectedOutcome.Metric, _ label: String, point: String? = nil) -> ConfidenceInterval? {
        let values = self.pairedValues(metric, label, point: point).sorted { $0.key < $1.key }.map(\.value)
        return Self.bootstrap("\(metric.rawValue)|\(label)|\(point ?? "")").meanInterval(values)
    }

    /// The mean paired difference `metric(a) - metric(b)` with its 95% interval; `nil` with fewer than
    /// two pairs.
    public func difference(_ metric: ExpectedOutcome.Metric, _ a: String, _ b: String, point: String? = nil) -> ConfidenceInterval? {
        Self.bootstrap("\(metric.rawValue)|\(a)|\(b)|\(point ?? "")").pairedDifference(
            self.pairedValues(metric, a, point: point), self.pairedValues(metric, b, point: point)
        )
    }

    /// The metrics some group has a value of, in ``ExpectedOutcome/Metric``'s order.
    var reportedMetrics: [ExpectedOutcome.Metric] {
        ExpectedOutcome.Metric.allCases.filter { metric in
            self.groups.contains { group in group.reports.contains { Self.value(metric, of: $0) != nil } }
        }
    }

    /// Whether any algorithm has two runs or more, so that intervals can be given.
    public var hasRepeats: Bool {
        self.groups.contains { $0.reports.count > 1 }
    }

    /// A sweep's grid of `metric`: points down, algorithms across, each cell the mean with its 95%
    /// interval when there are repeats.
    public func grid(_ metric: ExpectedOutcome.Metric) -> String {
        let labels = self.labels
        var rows = [["point"] + labels]
        for point in self.points {
            var row = [point]
            for label in labels {
                guard let mean = self.mean(metric, label, point: point) else {
                    row.append("-")
                    continue
                }
                let digits = Self.digits(metric, mean)
                var cell = Self.format(mean, digits: digits)
                if let interval = self.interval(metric, label, point: point) {
                    cell += " [\(Self.format(interval.low, digits: digits)), \(Self.format(interval.high, digits: digits))]"
                }
                row.append(cell)
            }
            rows.append(row)
        }
        return Self.render(rows)
    }

    /// A sweep's paired differences of `metric`: points down, each pair of algorithms across, each cell
    /// the mean difference (first minus second) with its 95% interval, marked `*` when the interval
    /// leaves zero out.
    public func differenceGrid(_ metric: ExpectedOutcome.Metric) -> String {
        let labels = self.labels
        let pairs = labels.enumerated().flatMap { i, a in labels[(i + 1)...].map { (a, $0) } }
        var rows = [["point"] + pairs.map { "\($0.0) - \($0.1)" }]
        for point in self.points {
            var row = [point]
            for (a, b) in pairs {
                guard let difference = self.difference(metric, a, b, point: point) else {
                    row.append("-")
                    continue
                }
                let digits = Self.digits(metric, max(abs(difference.low), abs(difference.high)))
                row.append(
                    "\(Self.format(difference.mean, digits: digits)) [\(Self.format(difference.low, digits: digits)), \(Self.format(difference.high, digits: digits))]"
                        + (difference.contains(0) ? " " : "*")
                )
            }
            rows.append(row)
        }
        return Self.render(rows)
    }

    /// The intervals and the paired differences with a heading that names the method, or a line saying
    /// that one run of each cannot give them. A sweep shows `metrics` as grids (points down,
    /// algorithms across), each with its paired differences.
    public func statisticsText(metrics: [ExpectedOutcome.Metric] = [.p99, .throughput]) -> String {
        let method = "\(Bootstrap.method), 10,000 resamples, seeded"
        if !self.points.isEmpty {
            var sections: [String] = []
            for metric in metrics {
                sections.append("\(metric.rawValue) (\(metric.summary)) at each point" + (self.hasRepeats ? ", mean [95% interval] (\(method)):" : ":") + "\n" + self.grid(metric))
                if self.hasRepeats, self.labels.count > 1 {
                    sections.append("\(metric.rawValue), paired differences run against run of the same seed (* : the interval leaves zero out):\n" + self.differenceGrid(metric))
                }
            }
            if !self.hasRepeats { sections.append("one run of each algorithm at each point: no confidence intervals (repeat the scenario: --repeat 5)") }
            return sections.joined(separator: "\n\n")
        }
        guard self.hasRepeats else {
            return "one run of each algorithm: no confidence intervals, and no difference can be judged significant (repeat the scenario: --repeat 5)"
        }
        var text = "means with 95% confidence intervals (\(method)):\n" + self.intervalTable()
        let fewest = self.groups.map(\.reports.count).filter { $0 > 1 }.min() ?? 0
        if fewest < 10 {
            let coverage = Int((Bootstrap.expectedCoverage(sampleSize: fewest, confidence: 0.95) * 100).rounded())
            text += "\nnote: with \(fewest) repeats a 95% bootstrap interval of a mean covers the true mean only about \(coverage)% of the time "
                + "(normal data); 10 repeats or more bring it above 90%"
        }
        let differences = self.differenceTable()
        if !differences.isEmpty {
            text += "\n\npaired differences, run against run of the same seed (\(Bootstrap.method) 95% intervals; zero out: the difference is significant):\n" + differences
        }
        return text
    }

    /// Every metric's mean and 95% interval per algorithm: metrics down, algorithms across.
    public func intervalTable() -> String {
        var rows = [["metric"] + self.groups.map(\.label)]
        for metric in self.reportedMetrics {
            var row = [metric.rawValue]
            for group in self.groups {
                guard let mean = self.mean(metric, group.label) else {
                    row.append("-")
                    continue
                }
                let digits = Self.digits(metric, mean)
                if let interval = self.interval(metric, group.label) {
                    row.append("\(Self.format(mean, digits: digits)) [\(Self.format(interval.low, digits: digits)), \(Self.format(interval.high, digits: digits))]")
                } else {
                    row.append(Self.format(mean, digits: digits))
                }
            }
            rows.append(row)
        }
        return Self.render(rows)
    }

    /// For each pair of algorithms and each metric, the mean paired difference (first minus second)
    /// with its 95% interval, and whether the interval leaves zero out.
    public func differenceTable() -> String {
        var rows = [["metric", "difference", "mean", "95% interval", "pairs", "zero out"]]
        let labels = self.groups.map(\.label)
        for metric in self.reportedMetrics {
            for (i, a) in labels.enumerated() {
                for b in labels[(i + 1)...] {
                    // A metric alike in every pair of runs (no errors in any) says nothing.
                    guard let difference = self.difference(metric, a, b), difference.low != 0 || difference.high != 0 else { continue }
                    let digits = Self.digits(metric, max(abs(difference.low), abs(difference.high)))
                    rows.append([
                        metric.rawValue, "\(a) - \(b)", Self.format(difference.mean, digits: digits),
                        "[\(Self.format(difference.low, digits: digits)), \(Self.format(difference.high, digits: digits))]",
                        "\(difference.sampleSize)", difference.contains(0) ? "" : "yes",
                    ])
                }
            }
        }
        return rows.count > 1 ? Self.render(rows) : ""
    }

    /// The verdict of an expectation asked `with confidence`: both sides are evaluated for each
    /// pairing key every label they name has, and the inequality holds when the bootstrap interval of
    /// the mean difference `lhs - rhs` is wholly on its side of zero.
    func pairedVerdict(_ expectation: ExpectedOutcome, confidence: Double, point: String?) -> (holds: Bool?, explanation: String) {
        let named = expectation.lhs.metrics + expectation.rhs.metrics
        let values = Dictionary(
            named.map { metric, written in
                let (label, at) = self.resolve(written, at: point)
                return ("\(metric.rawValue)|\(written)", self.pairedValues(metric, label, point: at))
            },
            uniquingKeysWith: { a, _ in a }
        )
        var keys: Set<PairKey>?
        for each in values.values { keys = keys.map { $0.intersection(each.keys) } ?? Set(each.keys) }
        var differences: [Double] = []
        for key in (keys ?? []).sorted() {
            let lookup = { (metric: ExpectedOutcome.Metric, label: String) in values["\(metric.rawValue)|\(label)"]?[key] }
            guard let lhs = expectation.lhs.evaluate(lookup), let rhs = expectation.rhs.evaluate(lookup) else { continue }
            differences.append(lhs - rhs)
        }
        let percent = String(format: "%g%%", confidence * 100)
        let means = expectation.explain { metric, written in
            let (label, at) = self.resolve(written, at: point)
            return self.mean(metric, label, point: at)
        }
        guard let interval = Self.bootstrap(expectation.text + "|" + (point ?? ""), confidence: confidence).meanInterval(differences) else {
            return (
                nil,
                "\(means)  (cannot judge significance: \(differences.count) paired run\(differences.count == 1 ? "" : "s") of the algorithms it names; it needs two or more, e.g. --repeat 5)"
            )
        }
        let holds: Bool
        switch expectation.comparison {
        case .less: holds = interval.high < 0
        case .lessOrEqual: holds = interval.high <= 0
        case .greater: holds = interval.low > 0
        case .greaterOrEqual: holds = interval.low >= 0
        case .equal, .notEqual: holds = false
        }
        let digits = Self.digits(.p99, max(abs(interval.low), abs(interval.high)))
        let test = "paired over \(interval.sampleSize) repeats, \(Bootstrap.method) \(percent) interval of lhs - rhs: "
            + "\(Self.format(interval.mean, digits: digits)) [\(Self.format(interval.low, digits: digits)), \(Self.format(interval.high, digits: digits))]"
        return (holds, "\(means)  (\(test))")
    }

    /// Digits to show `value` of `metric` with.
    static func digits(_ metric: ExpectedOutcome.Metric, _ value: Double) -> Int {
        switch metric {
        case .throughput, .requests, .errors: return abs(value) >= 100 ? 0 : 1
        case .jain, .retries, .errorRate: return 4
        case .imbalance, .imbalancePerSecond, .cov, .weightDeviation, .remappedOnAdd, .remappedOnRemove, .hostSteal: return 3
        default: return abs(value) >= 100 ? 1 : abs(value) >= 1 ? 2 : 3
        }
    }
}
