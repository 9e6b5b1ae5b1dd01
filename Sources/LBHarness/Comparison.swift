import Foundation
public import LBConfig
public import LBStore

/// Algorithms side by side: each metric's mean and spread over the repeats of each algorithm (at each
/// point of a sweep), the table `lbctl run` prints at its end and `lbctl compare` prints from a file,
/// and the values `expect:` is checked against.
public struct Comparison: Sendable {
    /// The runs of one algorithm (at one point of a sweep).
    public struct Group: Sendable {
        public var label: String
        /// The sweep point (`load.total-rate=0.5c`), or `nil` outside a sweep.
        public var point: String?
        public var reports: [RunReport]
    }

    /// One group per algorithm and point, in the order first seen.
    public var groups: [Group]
    /// The sweep's points in their order, or none outside a sweep.
    public var points: [String]
    /// The runs of a service-level search, by algorithm: extra loads between a sweep's points.
    public var searches: [String: [RunReport]] = [:]
    /// The scenario's `slo:`, for the throughput at it.
    public var serviceLevel: ServiceLevel?

    /// Groups `reports` by their run's algorithm label and sweep point; when real and simulated runs
    /// (or the load generator's alone) are among them, by label and kind, `round-robin [sim]` beside
    /// `round-robin [real]`. Capacity probes' runs are left out.
    public init(reports: [RunReport]) {
        var groups: [Group] = []
        var points: [(index: Int, label: String)] = []
        let reports = reports.filter { SweepParameters(json: $0.run.paramsJSON).probe == nil }
        let mixed = Set(reports.map(\.run.kind)).count > 1
        var searches: [String: [RunReport]] = [:]
        for report in reports {
            let label = (report.run.algorithm ?? "?") + (mixed ? " [\(report.run.kind)]" : "")
            let parameters = SweepParameters(json: report.run.paramsJSON)
            if parameters.search {
                searches[label, default: []].append(report)
                continue
            }
            if let point = parameters.point, !points.contains(where: { $0.label == point.label }) { points.append(point) }
            if let index = groups.firstIndex(where: { $0.label == label && $0.point == parameters.point?.label }) {
                groups[index].reports.append(report)
            } else {
                groups.append(Group(label: label, point: parameters.point?.label, reports: [report]))
            }
        }
        self.groups = groups
        self.points = points.sorted { $0.index < $1.index }.map(\.label)
        self.searches = searches
    }

    /// The algorithms' labels, in the order first seen.
    public var labels: [String] {
        var labels: [String] = []
        for group in self.groups where !labels.contains(group.label) { labels.append(group.label) }
        return labels
    }

    /// The point an expectation names (`backends.count=64`), as the sweep labels it; `nil` for none.
    func point(_ named: String?) -> String? {
        named.flatMap { ExpectedOutcome.point(named: $0, among: self.points) }
    }

    /// An expectation's label (`random`, or `random@backends.count=64`) as the algorithm's label and
    /// the point to look it up at: the one it names, or `point` when it names none (`nil` when the one
    /// it names is not a point of the sweep).
    func resolve(_ written: String, at point: String?) -> (label: String, point: String?) {
        let (label, named) = ExpectedOutcome.split(written)
        return (label, named.map { self.point($0) } ?? point)
    }

    /// The group of `label` at `point`.
    func group(_ label: String, point: String?) -> Group? {
        self.groups.first { $0.label == label && $0.point == point }
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
        case .weightDeviation: return report.weightDeviation
        case .retries: return report.retriesPerRequest
        case .ejectTime: return report.ejectSeconds
        case .readmitTime: return report.readmitSeconds
        case .remappedOnAdd: return report.remappedOnAdd
        case .remappedOnRemove: return report.remappedOnRemove
        case .hostSteal: return report.hostSteal
        case .divertTime: return report.divertSeconds
        case .divertRequests: return report.divertRequests.map(Double.init)
        case .knee, .serviceLevelThroughput: return nil
        }
    }

    /// The mean of `metric` over the runs of `label` at `point` (`nil` when no run has it).
    public func mean(_ metric: ExpectedOutcome.Metric, _ label: String, point: String? = nil) -> Double? {
        self.statistics(metric, label, point: point)?.mean
    }

    /// Mean and sample standard deviation of `metric` over the runs of `label` at `point`.
    public func statistics(_ metric: ExpectedOutcome.Metric, _ label: String, point: String? = nil) -> (mean: Double, sd: Double?)? {
        guard let group = self.group(label, point: point) else { return nil }
        let values = group.reports.compactMap { Self.value(metric, of: $0) }
        guard !values.isEmpty else { return nil }
        let mean = values.reduce(0, +) / Double(values.count)
        guard values.count > 1, values.allSatisfy(\.isFinite) else { return (mean, nil) }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
        return (mean, variance.squareRoot())
    }

    /// The verdict of each expectation: holds, fails, or cannot be told (a metric is missing, or a
    /// difference asked `with confidence` has fewer than two repeats to judge it on). The explanation
    /// ends with the test used: the means over the runs, or the paired bootstrap interval.
    ///
    /// In a sweep, an expectation is judged at every point, and holds when it holds at each.
    public func verdicts(_ expectations: [ExpectedOutcome]) -> [(expectation: ExpectedOutcome, holds: Bool?, explanation: String)] {
        expectations.map { expectation in
            let named = (expectation.lhs.metrics + expectation.rhs.metrics).map(\.0)
            if named.contains(where: \.isSweepFigure) {
                // A sweep's figures are one per algorithm: judged once, with the other figures (if any)
                // outside a sweep.
                let lookup = { (metric: ExpectedOutcome.Metric, label: String) in
                    metric.isSweepFigure ? self.sweepFigure(metric, label) : self.points.isEmpty ? self.mean(metric, label) : nil
                }
                let test = "a sweep's figures: the knee by Kneedle, the throughput at the service level interpolated between loads"
                return (expectation, expectation.holds(lookup), expectation.explain(lookup) + "  (\(test))")
            }
            // Algorithms at named points are judged once, each at its point.
            guard !self.points.isEmpty, !expectation.namesPoints else {
                let (holds, explanation) = self.verdict(expectation, point: nil)
                return (expectation, holds, explanation)
            }
            let verdicts = self.points.map { point in (point, self.verdict(expectation, point: point)) }
            let all = verdicts.map(\.1.holds)
            let holds: Bool? = all.contains(false) ? false : all.contains(nil) ? nil : true
            let lines = verdicts.map { point, verdict in
                "at \(point): \(verdict.holds.map { $0 ? "holds" : "FAILS" } ?? "cannot be told"): \(verdict.explanation)"
            }
            return (expectation, holds, "judged at each of \(self.points.count) points:\n        " + lines.joined(separator: "\n        "))
        }
    }

    /// The verdict of `expectation` at `point` (or outside a sweep).
    func verdict(_ expectation: ExpectedOutcome, point: String?) -> (holds: Bool?, explanation: String) {
        if let confidence = expectation.confidence { return self.pairedVerdict(expectation, confidence: confidence, point: point) }
        let lookup = { (metric: ExpectedOutcome.Metric, written: String) in
            let (label, at) = self.resolve(written, at: point)
            return self.mean(metric, label, point: at)
        }
        let labels = Set((expectation.lhs.metrics + expectation.rhs.metrics).map(\.1))
        let runs = labels.sorted().map { written in
            let (label, at) = self.resolve(written, at: point)
            return self.group(label, point: at)?.reports.count ?? 0
        }
        let test: String
        if runs.allSatisfy({ $0 <= 1 }) {
            test = "one run each: the values compared, significance not judged"
        } else {
            test = "means over \(Set(runs).sorted().map(String.init).joined(separator: "/")) runs compared, significance not judged"
        }
        return (expectation.holds(lookup), expectation.explain(lookup) + "  (\(test))")
    }

    /// The table: one row per algorithm; with repeats, each cell is the mean ± the standard deviation.
    public func table() -> String {
        let columns: [(String, ExpectedOutcome.Metric, Int)] = [
            ("req/s", .throughput, 0), ("p50 ms", .p50, 2), ("p90 ms", .p90, 2), ("p99 ms", .p99, 2), ("p99.9 ms", .p999, 2),
            ("max ms", .max, 1), ("errors", .errors, 0), ("max/mean", .imbalance, 3), ("Jain", .jain, 4), ("retries/req", .retries, 4), ("steal", .hostSteal, 3),
        ]
        let sweep = !self.points.isEmpty
        var rows = [["algorithm"] + (sweep ? ["point"] : []) + ["runs"] + columns.map(\.0)]
        // A sweep's groups point by point, the algorithms in their order at each.
        let groups = sweep ? self.points.flatMap { point in self.groups.filter { $0.point == point } } : self.groups
        for group in groups {
            var row = [group.label] + (sweep ? [group.point ?? "-"] : []) + ["\(group.reports.count)"]
            for (_, metric, digits) in columns {
                guard let statistics = self.statistics(metric, group.label, point: group.point) else {
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
