import Foundation
public import LBConfig
public import LBExperiment
import LBCore
import LBStore

/// The figures of a sweep as a whole, per algorithm: the knee of its p99 against the swept field, and
/// the highest offered load at the scenario's service level.
///
/// Both need a sweep of one field (the axis); the load's shares of capacity count as the offered
/// requests a second they came to.
extension Comparison {
    /// The swept field, when the sweep has exactly one.
    public var axis: String? {
        guard let first = self.points.first else { return nil }
        let fields = first.split(separator: " ")
        guard fields.count == 1, let equals = fields[0].firstIndex(of: "=") else { return nil }
        return String(fields[0][..<equals])
    }

    /// Whether the axis is the offered load.
    var axisIsLoad: Bool {
        self.axis == "load.total-rate" || self.axis == "load.rate"
    }

    /// Where `report` sits on the axis: the total rate it offered for the load, or the field's value
    /// (a number, or a duration in milliseconds).
    func axisValue(_ report: RunReport) -> Double? {
        let parameters = SweepParameters(json: report.run.paramsJSON)
        if self.axisIsLoad { return parameters.totalRate }
        guard let axis = self.axis, let text = parameters.values[axis] else { return nil }
        if let number = Double(text) { return number }
        if let duration = try? GoDuration.parse(text) { return Double(duration.nanoseconds) / 1e6 }
        return nil
    }

    /// `label`'s curve of `metric` along the axis: each point's position, the metric's mean and the
    /// error rate's mean; with `searches`, the service-level search's runs too, each its own point.
    public func curve(_ label: String, _ metric: ExpectedOutcome.Metric, searches: Bool = false) -> [(x: Double, value: Double, errorRate: Double)] {
        guard self.axis != nil else { return [] }
        var runs: [(x: Double, reports: [RunReport])] = self.points.compactMap { point in
            guard let group = self.group(label, point: point), let first = group.reports.first, let x = self.axisValue(first) else { return nil }
            return (x, group.reports)
        }
        if searches {
            for report in self.searches[label] ?? [] {
                guard let x = self.axisValue(report) else { continue }
                if let index = runs.firstIndex(where: { abs($0.x - x) < 1e-9 * max(1, abs(x)) }) {
                    runs[index].reports.append(report)
                } else {
                    runs.append((x, [report]))
                }
            }
        }
        return runs.sorted { $0.x < $1.x }.compactMap { x, reports in
            let values = reports.compactMap { Self.value(metric, of: $0) }
            let errors = reports.compactMap { Self.value(.errorRate, of: $0) }
            guard !values.isEmpty else { return nil }
            return (x, values.reduce(0, +) / Double(values.count), errors.isEmpty ? 0 : errors.reduce(0, +) / Double(errors.count))
        }
    }

    /// The knee of `label`'s p99 along the axis (Kneedle), or `nil`.
    public func knee(_ label: String) -> Kneedle.Knee? {
        let curve = self.curve(label, .p99)
        return Kneedle.knee(x: curve.map(\.x), y: curve.map(\.value))
    }

    /// The highest offered load at which `label` meets the service level, from the sweep's points and
    /// any search runs between them, interpolated between the last load where it holds and the next.
    public func serviceLevelThroughput(_ label: String) -> ServiceLevelSearch.Finding? {
        guard let level = self.serviceLevel, self.axisIsLoad else { return nil }
        let curve = self.curve(label, level.metric, searches: true)
        return ServiceLevelSearch.interpolate(
            load: curve.map(\.x), latency: curve.map(\.value), errorRate: curve.map(\.errorRate),
            latencyTarget: Double(level.target.nanoseconds) / 1e6, errorTarget: level.errorRate
        )
    }

    /// A sweep figure of `label` as `expect:` reads it: the knee's position, or the load at the
    /// service level (its bound when every point holds or none does).
    func sweepFigure(_ metric: ExpectedOutcome.Metric, _ label: String) -> Double? {
        switch metric {
        case .knee: self.knee(label)?.x
        case .serviceLevelThroughput: self.serviceLevelThroughput(label)?.value
        default: nil
        }
    }

    /// The knees and the throughput at the service level, one line per algorithm with the points they
    /// came from; empty when the sweep has more than one field.
    public func sweepFiguresText() -> String {
        guard let axis = self.axis else {
            return self.points.isEmpty ? "" : "knee and throughput at the service level: only for a sweep of one field"
        }
        let unit = self.axisIsLoad ? " req/s offered" : ""
        var lines = ["knee of p99 against \(axis) (Kneedle: Satopaa et al., ICDCS Workshops 2011), from the means at each point:"]
        for label in self.labels {
            let curve = self.curve(label, .p99)
            let points = curve.map { String(format: "%@ %.2f ms", Sweep.Value.number(($0.x * 10).rounded() / 10), $0.value) }.joined(separator: ", ")
            if let knee = self.knee(label) {
                lines.append("  \(label): \(Sweep.Value.number((knee.x * 10).rounded() / 10))\(unit) (p99 \(Self.format(knee.y, digits: 2)) ms); points: \(points)")
            } else {
                lines.append("  \(label): none (p99 does not turn upward within the points); points: \(points)")
            }
        }
        if let level = self.serviceLevel, self.axisIsLoad {
            lines.append("throughput at the service level (\(level)), interpolated between the points" + (self.searches.isEmpty ? ":" : " and the search's runs:"))
            for label in self.labels {
                let searched = self.searches[label]?.count ?? 0
                let note = searched > 0 ? " (\(searched) search runs)" : ""
                switch self.serviceLevelThroughput(label) {
                case .interpolated(let value, let low, let high)?:
                    lines.append(String(format: "  %@: %.1f req/s offered, between %.1f (holds) and %.1f (fails)%@", label, value, low, high, note))
                case .atLeast(let value)?:
                    lines.append(String(format: "  %@: at least %.1f req/s offered (holds at every point)%@", label, value, note))
                case .below(let value)?:
                    lines.append(String(format: "  %@: below %.1f req/s offered (fails at the first point)%@", label, value, note))
                case nil:
                    lines.append("  \(label): no points")
                }
            }
        }
        return lines.joined(separator: "\n")
    }
}
