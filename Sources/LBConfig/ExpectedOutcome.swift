import Foundation

/// An outcome a scenario exists to show, as written under `expect:`:
/// `p99(peak-ewma) < 0.5 * p99(round-robin)`, `errors(least-connections) == 0`.
///
/// Each side is arithmetic (`+ - * /`, parentheses) over numbers and metrics of one algorithm,
/// `metric(label)`, or of one algorithm at one point of the scenario's sweep,
/// `metric(label@backends.count=64)`; the comparison is one of `< <= > >= == !=`. A metric's value is its mean over the
/// repeats. ``Metric`` lists what can be asked and in which unit.
///
/// Followed by `with confidence` (or `with 99% confidence`), an inequality is judged on the paired
/// difference instead of the means: both sides are evaluated for each repeat (repeat k of every
/// algorithm runs with the same seed), and `lhs < rhs` holds when the whole 95% bootstrap interval of
/// the mean of `lhs - rhs` is below zero.
public struct ExpectedOutcome: Sendable, Hashable, CustomStringConvertible {
    /// The text as written.
    public var text: String
    /// The left side.
    public var lhs: Expression
    /// The comparison.
    public var comparison: Comparison
    /// The right side.
    public var rhs: Expression
    /// The line in the scenario file.
    public var line: Int
    /// The confidence the difference must hold with (`with 95% confidence`: 0.95), or `nil` to compare
    /// the means.
    public var confidence: Double?

    public init(text: String, lhs: Expression, comparison: Comparison, rhs: Expression, line: Int, confidence: Double? = nil) {
        self.text = text
        self.lhs = lhs
        self.comparison = comparison
        self.rhs = rhs
        self.line = line
        self.confidence = confidence
    }

    public var description: String { self.text }

    /// A figure of a run that `expect:` can name.
    public enum Metric: String, Sendable, Hashable, CaseIterable {
        case p50, p90, p99, p999 = "p99.9", max, mean
        case serviceP50 = "service-p50", serviceP99 = "service-p99"
        case errors, errorRate = "error-rate", throughput, requests
        case imbalance, imbalancePerSecond = "imbalance-1s", cov, jain, weightDeviation = "weight-deviation"
        case retries
        case ejectTime = "eject-time", readmitTime = "readmit-time"
        case remappedOnAdd = "remapped-add", remappedOnRemove = "remapped-remove"
        case hostSteal = "host-steal"
        case divertTime = "divert-time", divertRequests = "divert-requests"
        case knee, serviceLevelThroughput = "slo-throughput"

        /// Whether it is a figure of a whole sweep (one per algorithm) rather than of each run.
        public var isSweepFigure: Bool {
            self == .knee || self == .serviceLevelThroughput
        }

        /// What it is and its unit, for `lbctl run --help` and errors.
        public var summary: String {
            switch self {
            case .p50, .p90, .p99, .p999, .max, .mean: "corrected latency (from the intended send time), ms"
            case .serviceP50, .serviceP99: "service time (from the actual send), ms"
            case .errors: "requests that failed or got a 5xx, count"
            case .errorRate: "errors / requests"
            case .throughput: "responses per second after the warm-up"
            case .requests: "requests after the warm-up, count"
            case .imbalance: "max / mean of the requests per backend"
            case .imbalancePerSecond: "max / mean of the requests per backend in each second, averaged over the seconds"
            case .cov: "coefficient of variation of the requests per backend"
            case .jain: "Jain's fairness index of the requests per backend (1 = equal)"
            case .weightDeviation: "largest gap between a backend's share and its weight's share, relative to the latter (0 = as weighted)"
            case .retries: "retries per request at the proxy"
            case .ejectTime: "s from the first kill/stop to the proxy marking that backend down or ejected"
            case .readmitTime: "s from the first restart/resume to the proxy marking that backend up again"
            case .remappedOnAdd: "share of keys served by another backend after the first add than before"
            case .remappedOnRemove: "share of keys served by another backend after the first remove than before"
            case .hostSteal: "share of the machine's CPU time its hypervisor took during the run (steal)"
            case .divertTime: "s from the first slow/errors step on a backend until the proxy sends it under half its fair share (inf: never)"
            case .divertRequests: "requests the proxy sent that backend from the step until then"
            case .knee: "of a sweep: the swept value (offered req/s for the load) at which p99 turns sharply upward (Kneedle)"
            case .serviceLevelThroughput: "of a sweep of the load: the highest offered req/s at which the scenario's slo: holds"
            }
        }
    }

    /// A comparison between the two sides.
    public enum Comparison: String, Sendable, Hashable, CaseIterable {
        case less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">=", equal = "==", notEqual = "!="

        func holds(_ lhs: Double, _ rhs: Double) -> Bool {
            switch self {
            case .less: lhs < rhs
            case .lessOrEqual: lhs <= rhs
            case .greater: lhs > rhs
            case .greaterOrEqual: lhs >= rhs
            case .equal: lhs == rhs
            case .notEqual: lhs != rhs
            }
        }
    }

    /// One side of an expectation.
    public indirect enum Expression: Sendable, Hashable, CustomStringConvertible {
        case number(Double)
        case metric(Metric, label: String)
        case binary(Character, Expression, Expression)

        /// Every `(metric, label)` the expression names.
        public var metrics: [(Metric, String)] {
            switch self {
            case .number: []
            case .metric(let metric, let label): [(metric, label)]
            case .binary(_, let lhs, let rhs): lhs.metrics + rhs.metrics
            }
        }

        /// The value, with `value` giving each metric's; `nil` when one is unknown.
        public func evaluate(_ value: (Metric, String) -> Double?) -> Double? {
            switch self {
            case .number(let number):
                return number
            case .metric(let metric, let label):
                return value(metric, label)
            case .binary(let op, let lhs, let rhs):
                guard let left = lhs.evaluate(value), let right = rhs.evaluate(value) else { return nil }
                switch op {
                case "+": return left + right
                case "-": return left - right
                case "*": return left * right
                default: return left / right
                }
            }
        }

        public var description: String {
            switch self {
            case .number(let number): number == number.rounded() && abs(number) < 1e15 ? "\(Int(number))" : "\(number)"
            case .metric(let metric, let label): "\(metric.rawValue)(\(label))"
            case .binary(let op, let lhs, let rhs): "\(lhs) \(op) \(rhs)"
            }
        }
    }

    /// A label as an expectation writes it, split into the algorithm's label and the sweep point it
    /// names after `@`, if any.
    public static func split(_ label: String) -> (label: String, point: String?) {
        guard let at = label.firstIndex(of: "@") else { return (label, nil) }
        return (String(label[..<at]), String(label[label.index(after: at)...]))
    }

    /// The one point among `points` (labels such as `backends.count=64 load.total-rate=3200`) that has
    /// every `field=value` of `named`, or `nil` when none or several do.
    public static func point(named: String, among points: [String]) -> String? {
        let wanted = Set(named.split(separator: " "))
        let matching = points.filter { wanted.isSubset(of: Set($0.split(separator: " "))) }
        return matching.count == 1 ? matching[0] : nil
    }

    /// Whether it names an algorithm at a sweep point (`label@point`).
    public var namesPoints: Bool {
        (self.lhs.metrics + self.rhs.metrics).contains { Self.split($0.1).point != nil }
    }

    /// The verdict given each metric's value: `nil` when a metric is unknown.
    public func holds(_ value: (Metric, String) -> Double?) -> Bool? {
        guard let left = self.lhs.evaluate(value), let right = self.rhs.evaluate(value) else { return nil }
        return self.comparison.holds(left, right)
    }

    /// Both sides evaluated, for the verdict line: `p99(rr) = 12.3 < 0.5 * p99(lc) = 4.1`.
    public func explain(_ value: (Metric, String) -> Double?) -> String {
        func show(_ expression: Expression) -> String {
            guard let number = expression.evaluate(value) else { return "\(expression) = ?" }
            if case .number = expression { return "\(expression)" }
            return "\(expression) = \(Self.format(number))"
        }
        return "\(show(self.lhs)) \(self.comparison.rawValue) \(show(self.rhs))"
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e12 { return "\(Int(value))" }
        let magnitude = abs(value)
        let digits = magnitude >= 100 ? 1 : magnitude >= 1 ? 3 : 4
        return String(format: "%.\(digits)f", value)
    }
}
