import Foundation
public import LBConfig
public import LBStore

/// Algorithms side by side: each metric's mean and spread over the repeats of each algorithm, the
/// table `lbctl run` prints at its end and `lbctl compare` prints from a file, and the values
/// `expect:` is checked against.
public struct Comparison: Sendable {
    /// The runs of one algorithm.
    public struct Group: Sendable {
        public var label: String
        public var reports: [RunReport]
    }

    /// One group per algorithm, in the order first seen.
    public var groups: [Group]

    /// Groups `reports` by their run's algorithm label; when real and simulated runs (or the load
    /// generator's alone) are among them, by label and kind, `round-robin [sim]` beside
    /// `round-robin [real]`.
    public init(reports: [RunReport]) {
        var groups: [Group] = []
        let mixed = Set(reports.map(\.run.kind)).count > 1
        for report in reports {
            let label = (report.run.algorithm ?? "?") + (mixed ? " [\(report.run.kind)]" : "")
            if let index = groups.firstIndex(where: { $0.label == label }) {
                groups[index].reports.append(report)
            } else {
                groups.append(Group(label: label, reports: [report]))
            }
        }
        self.groups = groups
    }

    /// A metric of one run, in the unit `expect:` uses (ms for latency, s for reaction times).
    public static func value(_ metric: ExpectedOutcome.Metric, of report: RunReport) -> Double? {
        func ms(_ micros: Int64?) -> Double? { micros.map { Double($0) / 1_000 } }
        switch metric {
        case .p50: return ms(report.corrected.p50)
        case .p90: return ms(report.corrected.p90)
        case .p99: return ms(report.corrected.p99)
        case .p999: return ms(report.corrected.p999)
        case .max: return ms(report.corrected.max)
        case .mean: return report.corrected.mean.map { $0 / 1_000 }
        case .serviceP50: return ms(report.service.p50)
        case .serviceP99: return ms(report.service.p99)
        case .errors: return Double(report.errors)
        case .errorRate: return report.requests > 0 ? Double(report.errors) / Double(report.requests) : nil
        case .throughput: return report.throughput
        case .requests: return Double(report.requests)
        case .imbalance: return report.imbalance
        case .imbalancePerSecond: return report.imbalancePerSecond
        case .cov: return report.coefficientOfVariation
        case .jain: return report.jainIndex
        case .retries: return report.retriesPerRequest
        case .ejectTime: return report.ejectSeconds
        case .readmitTime: return report.readmitSeconds
        case .remappedOnAdd: return report.remappedOnAdd
        case .remappedOnRemove: return report.remappedOnRemove
        case .hostSteal: return report.hostSteal
        }
    }

    /// The mean of `metric` over the runs of `label` (`nil` when no run has it).
    public func mean(_ metric: ExpectedOutcome.Metric, _ label: String) -> Double? {
        self.statistics(metric, label)?.mean
    }

    /// Mean and sample standard deviation of `metric` over the runs of `label`.
    public func statistics(_ metric: ExpectedOutcome.Metric, _ label: String) -> (mean: Double, sd: Double?)? {
        guard let group = self.groups.first(where: { $0.label == label }) else { return nil }
        let values = group.reports.compactMap { Self.value(metric, of: $0) }
        guard !values.isEmpty else { return nil }
        let mean = values.reduce(0, +) / Double(values.count)
        guard values.count > 1 else { return (mean, nil) }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
        return (mean, variance.squareRoot())
    }

    /// The verdict of each expectation: holds, fails, or cannot be told (a metric is missing, or a
    /// difference asked `with confidence` has fewer than two repeats to judge it on). The explanation
    /// ends with the test used: the means over the runs, or the paired bootstrap interval.
    public func verdicts(_ expectations: [ExpectedOutcome]) -> [(expectation: ExpectedOutcome, holds: Bool?, explanation: String)] {
        expectations.map { expectation in
            if let confidence = expectation.confidence { return self.pairedVerdict(expectation, confidence: confidence) }
            let lookup = { (metric: ExpectedOutcome.Metric, label: String) in self.mean(metric, label) }
            let labels = Set((expectation.lhs.metrics + expectation.rhs.metrics).map(\.1))
            let runs = labels.sorted().map { label in self.groups.first { $0.label == label }?.reports.count ?? 0 }
            let test: String
            if runs.allSatisfy({ $0 <= 1 }) {
                test = "one run each: the values compared, significance not judged"
            } else {
                test = "means over \(Set(runs).sorted().map(String.init).joined(separator: "/")) runs compared, significance not judged"
            }
            return (expectation, expectation.holds(lookup), expectation.explain(lookup) + "  (\(test))")
        }
    }

    /// The table: one row per algorithm; with repeats, each cell is the mean ± the standard deviation.
    public func table() -> String {
        let columns: [(String, ExpectedOutcome.Metric, Int)] = [
            ("req/s", .throughput, 0), ("p50 ms", .p50, 2), ("p90 ms", .p90, 2), ("p99 ms", .p99, 2), ("p99.9 ms", .p999, 2),
            ("max ms", .max, 1), ("errors", .errors, 0), ("max/mean", .imbalance, 3), ("Jain", .jain, 4), ("retries/req", .retries, 4), ("steal", .hostSteal, 3),
        ]
        var rows = [["algorithm", "runs"] + columns.map(\.0)]
        for group in self.groups {
            var row = [group.label, "\(group.reports.count)"]
            for (_, metric, digits) in columns {
                guard let statistics = self.statistics(metric, group.label) else {
                    row.append("-")
                    continue
                }
                var cell = Self.format(statistics.mean, digits: digits)
                if let sd = statistics.sd { cell += " ±" + Self.format(sd, digits: digits) }
                row.append(cell)
            }
            rows.append(row)
        }
        return Self.render(rows)
    }

    static func format(_ value: Double, digits: Int) -> String {
        let text = String(format: "%.\(digits)f", value)
        // A value that rounds to zero is shown without a sign.
        return text.hasPrefix("-") && text.dropFirst().allSatisfy { $0 == "0" || $0 == "." } ? String(text.dropFirst()) : text
    }

    /// Columns padded to their widest cell; the first column left-aligned, the others right-aligned.
    public static func render(_ rows: [[String]]) -> String {
        guard let width = rows.map(\.count).max() else { return "" }
        let widths = (0..<width).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return column == 0 ? cell + padding : padding + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
