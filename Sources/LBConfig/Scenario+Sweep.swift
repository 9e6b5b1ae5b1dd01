import Foundation
import LBCore
import Yams

/// A scenario's `sweep:` block: fields of the scenario, each with the values it takes, combined into
/// points. A study runs every point × algorithm × repeat, each run recorded with its point.
///
/// ```yaml
/// sweep:
///   load.total-rate: {from: 0.3c, to: 1.1c, step: 0.2c}   # a range; `c`: the fleet's capacity
///   backends.count: [4, 16, 64]                           # a list
///   combine: cross                                        # every combination (default), or zip
/// ```
///
/// A field is a path into the scenario as written: keys joined by dots, list items by index
/// (`backends[1].latency`, `proxy.retries.attempts`, `timeline[0].at`). It must name a value the
/// scenario has, or a key its mapping may have. A point's scenario is the file with the point's values
/// in place, read with every check a file gets, so a value out of range is an error naming the line of
/// the sweep that gave it.
public struct Sweep: Sendable, Hashable {
    /// One swept field and its values.
    public struct Parameter: Sendable, Hashable {
        /// Its path (`load.total-rate`).
        public var path: String
        /// Its values, in order.
        public var values: [Value]
        /// The line of the sweep that gives it.
        public var line: Int
    }

    /// A value of a swept field: as written, or a share of the fleet's capacity (`0.5c`), which a
    /// capacity probe measures before the points run.
    public enum Value: Sendable, Hashable, CustomStringConvertible {
        case literal(String)
        case capacityShare(Double)

        public var description: String {
            switch self {
            case .literal(let text): text
            case .capacityShare(let share): Self.number(share) + "c"
            }
        }

        /// `value` with up to ten significant digits and no trailing zeros.
        public static func number(_ value: Double) -> String {
            if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
            var text = String(format: "%.10g", value)
            if text.contains("."), !text.contains("e") {
                while text.hasSuffix("0") { text.removeLast() }
            }
            return text
        }
    }

    /// How the parameters' values are combined.
    public enum Combination: String, Sendable, Hashable {
        /// Every combination, the last parameter changing fastest.
        case cross
        /// The i-th value of each together; all have as many values.
        case zip
    }

    public var parameters: [Parameter]
    public var combination: Combination

    /// The points, in run order.
    public var points: [SweepPoint] {
        switch self.combination {
        case .zip:
            let count = self.parameters.first?.values.count ?? 0
            return (0..<count).map { index in
                SweepPoint(index: index, values: self.parameters.map { ($0.path, $0.values[index]) })
            }
        case .cross:
            var combinations: [[(String, Value)]] = [[]]
            for parameter in self.parameters {
                combinations = combinations.flatMap { prefix in parameter.values.map { prefix + [(parameter.path, $0)] } }
            }
            return combinations.enumerated().map { SweepPoint(index: $0.offset, values: $0.element) }
        }
    }

    /// Whether a value is a share of the capacity, so that a probe must measure it first.
    public var needsCapacity: Bool {
        self.parameters.contains { $0.values.contains { if case .capacityShare = $0 { true } else { false } } }
    }

    /// The fields a share of capacity may be given for: the total rate, or each client's rate.
    static let capacityPaths: Set<String> = ["load.total-rate", "load.rate"]
    /// Fields that are not swept: what names the experiment and its matrix.
    static let fixedPaths: Set<String> = ["name", "question", "algorithms", "expect", "sweep", "repeats"]
}

/// One point of a sweep: a value for each swept field.
public struct SweepPoint: Sendable, Hashable, CustomStringConvertible {
    /// Its place in the sweep's order.
    public var index: Int
    /// Each field with its value.
    public var values: [(path: String, value: Sweep.Value)]

    /// `load.total-rate=0.5c backends.count=16`.
    public var description: String {
        self.values.map { "\($0.path)=\($0.value)" }.joined(separator: " ")
    }

    public static func == (lhs: SweepPoint, rhs: SweepPoint) -> Bool {
        lhs.index == rhs.index && lhs.description == rhs.description
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.index)
        hasher.combine(self.description)
    }
}

extension Sweep {
    init(reading node: ConfigNode, root: Node) throws(ConfigError) {
        guard case .mapping(let mapping) = node.node else { throw node.error("expected a mapping of fields to their values, e.g. load.total-rate: [100, 200]") }
        var parameters: [Parameter] = []
        var combination = Combination.cross
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else { throw node.error("a key must be a field path, e.g. load.total-rate") }
            let child = ConfigNode(node: valueNode, file: node.file, field: "sweep.\(key)")
            if key == "combine" {
                guard let chosen = Combination(rawValue: try child.choice(["cross", "zip"])) else { continue }
                combination = chosen
                continue
            }
            if Self.fixedPaths.contains(key) || Self.fixedPaths.contains(where: { key.hasPrefix($0 + ".") || key.hasPrefix($0 + "[") }) {
                throw child.error("\(key.split(separator: ".").first ?? "") is not swept: a sweep varies the experiment's settings, not what it compares or expects")
            }
            do throws(PathError) {
                _ = try Self.setting(root, path: Self.segments(key), to: Node("0"))
            } catch {
                throw child.error("\(key): \(error.message)")
            }
            let values = try Self.values(child)
            guard !values.isEmpty else { throw child.error("give at least one value") }
            if values.contains(where: { if case .capacityShare = $0 { true } else { false } }), !Self.capacityPaths.contains(key) {
                throw child.error("a share of capacity (0.5c) is for load.total-rate or load.rate only")
            }
            parameters.append(Parameter(path: key, values: values, line: child.line))
        }
        guard !parameters.isEmpty else { throw node.error("name at least one field to sweep, e.g. load.total-rate: [100, 200]") }
        if combination == .zip, Set(parameters.map(\.values.count)).count > 1 {
            throw node.error("combine: zip takes the i-th value of each field together; they have \(parameters.map { "\($0.values.count)" }.joined(separator: ", ")) values")
        }
        self.init(parameters: parameters, combination: combination)
    }

    /// A list of values, or a range `{from, to, step | factor | count}` of numbers or of shares of
    /// capacity.
    private static func values(_ node: ConfigNode) throws(ConfigError) -> [Value] {
        switch node.node {
        case .sequence:
            return try node.sequence().map { item throws(ConfigError) in try Self.value(item) }
        case .mapping:
            let map = try node.mapping(keys: ["from", "to", "step", "factor", "count"])
            let from = try Self.number(try map.required("from"))
            let to = try Self.number(try map.required("to"))
            guard from.relative == to.relative else { throw node.error("from and to must both be shares of capacity (0.3c), or neither") }
            let given = ["step", "factor", "count"].filter(map.has)
            guard given.count == 1 else { throw node.error("give one of step, factor or count") }
            var numbers: [Double] = []
            switch given[0] {
            case "step":
                let stepNode = try map.required("step")
                let step = try Self.number(stepNode)
                guard step.relative == from.relative, step.value > 0 else { throw stepNode.error("must be above 0, in the unit of from and to") }
                let count = Int(((to.value - from.value) / step.value + 1e-9).rounded(.down)) + 1
                guard count >= 1 else { throw node.error("to must not be below from") }
                guard count <= 10_000 else { throw stepNode.error("makes \(count) values; at most 10,000") }
                numbers = (0..<count).map { from.value + Double($0) * step.value }
            case "factor":
                let factorNode = try map.required("factor")
                let factor = try factorNode.double(in: 1.000_001...1e9)
                guard from.value > 0, to.value >= from.value else { throw node.error("a factor needs 0 < from <= to") }
                var value = from.value
                while value <= to.value * (1 + 1e-9) {
                    numbers.append(value)
                    value *= factor
                }
            default:
                let count = try map.required("count").int(in: 1...10_000)
                numbers = count == 1 ? [from.value] : (0..<count).map { from.value + (to.value - from.value) * Double($0) / Double(count - 1) }
            }
            // Rounded to ten significant digits, so that 0.1 steps read as written.
            let rounded = numbers.map { Double(Value.number($0))! }
            return rounded.map { from.relative ? .capacityShare($0) : .literal(Value.number($0)) }
        default:
            return [try Self.value(node)]
        }
    }

    private static func value(_ node: ConfigNode) throws(ConfigError) -> Value {
        let text = try node.string()
        if text.hasSuffix("c"), let share = Double(text.dropLast()) {
            guard share > 0, share.isFinite else { throw node.error("a share of capacity must be above 0, got \(text)") }
            return .capacityShare(share)
        }
        return .literal(text)
    }

    private static func number(_ node: ConfigNode) throws(ConfigError) -> (value: Double, relative: Bool) {
        let text = try node.string()
        let relative = text.hasSuffix("c")
        guard let value = Double(relative ? String(text.dropLast()) : text), value.isFinite else {
            throw node.error("\"\(text)\" is not a number (or a share of capacity, e.g. 0.5c)")
        }
        return (value, relative)
    }

    // MARK: Paths

    struct PathError: Error {
        var message: String
    }

    /// A path's segments: keys, and list indexes.
    enum Segment: Equatable {
        case key(String)
        case index(Int)
    }

    static func segments(_ path: String) -> [Segment] {
        var segments: [Segment] = []
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            var rest = Substring(part)
            let key = rest.prefix { $0 != "[" }
            segments.append(.key(String(key)))
            rest = rest.dropFirst(key.count)
            while rest.first == "[", let close = rest.firstIndex(of: "]") {
                segments.append(.index(Int(rest[rest.index(after: rest.startIndex)..<close]) ?? -1))
                rest = rest[rest.index(after: close)...]
            }
            if !rest.isEmpty { segments.append(.index(-1)) }
        }
        return segments
    }

    /// `node` with the value at `path` replaced by `value` (or added, when its mapping lacks the key).
    static func setting(_ node: Node, path: ArraySlice<Segment>, to value: Node) throws(PathError) -> Node {
        guard let first = path.first else { return value }
        let rest = path.dropFirst()
        switch (first, node) {
        case (.key(let key), .mapping(var mapping)):
            guard !key.isEmpty else { throw PathError(message: "an empty key; write fields as load.total-rate, backends[1].latency") }
            if let index = mapping.firstIndex(where: { $0.key.string == key }) {
                let child = try Self.setting(mapping[index].value, path: rest, to: value)
                mapping[index] = (mapping[index].key, child)
            } else {
                guard rest.isEmpty else { throw PathError(message: "the scenario has no \(key) here to go into") }
                mapping[key] = value
            }
            return .mapping(mapping)
        case (.index(let index), .sequence(var sequence)):
            guard sequence.indices.contains(index) else {
                throw PathError(message: "[\(index)] is not an item of that list (it has \(sequence.count))")
            }
            sequence[index] = try Self.setting(sequence[index], path: rest, to: value)
            return .sequence(sequence)
        case (.key(let key), _):
            throw PathError(message: "\(key) is not under a mapping here (the scenario has a \(Self.kind(node)) there)")
        case (.index(let index), _):
            throw PathError(message: index < 0 ? "a list index is a number in brackets, e.g. backends[1]" : "[\(index)] needs a list here (the scenario has a \(Self.kind(node)) there)")
        }
    }

    static func setting(_ node: Node, path: [Segment], to value: Node) throws(PathError) -> Node {
        try Self.setting(node, path: path[...], to: value)
    }

    private static func kind(_ node: Node) -> String {
        switch node {
        case .scalar: "single value"
        case .mapping: "mapping"
        case .sequence: "list"
        case .alias: "alias"
        }
    }
}

extension Scenario {
    /// The scenario at `point` of its sweep: the file with the point's values in place, read again with
    /// every check. A share of capacity needs `capacity` (requests a second the fleet serves at most);
    /// the point's total rate is then that share of it.
    public func at(_ point: SweepPoint, capacity: Double?) throws(ConfigError) -> Scenario {
        let root = try ConfigNode.parse(self.text, file: self.file)
        var node = root.node
        for (path, value) in point.values {
            let line = self.sweep?.parameters.first { $0.path == path }?.line ?? 0
            let text: String
            switch value {
            case .literal(let literal):
                text = literal
            case .capacityShare(let share):
                guard let capacity else {
                    throw ConfigError(file: self.file, line: line, field: "sweep.\(path)", problem: "\(value) needs the fleet's capacity, which a capacity probe measures first")
                }
                let total = share * capacity
                text = Sweep.Value.number(path == "load.rate" ? total / Double(self.load.clients) : total)
            }
            // The new value carries the mark of the sweep's value, so that an error in it points there.
            let mark = Self.sweepMark(root.node, path: path, valueIndex: self.sweep?.parameters.first { $0.path == path }?.values.firstIndex(of: value))
            do throws(Sweep.PathError) {
                node = try Sweep.setting(node, path: Sweep.segments(path), to: .scalar(Node.Scalar(text, .implicit, .any, mark)))
            } catch {
                throw ConfigError(file: self.file, line: line, field: "sweep.\(path)", problem: error.message)
            }
        }
        var scenario = try Self.read(ConfigNode(node: node, file: self.file, field: ""), text: self.text)
        scenario.point = point
        scenario.capacity = capacity
        return scenario
    }

    /// Where the sweep gives `path` its value number `valueIndex`: the list's item, or the range.
    private static func sweepMark(_ root: Node, path: String, valueIndex: Int?) -> Mark? {
        guard case .mapping(let top) = root, case .mapping(let sweep)? = top["sweep"], let given = sweep[path] else { return nil }
        if case .sequence(let items) = given, let valueIndex, items.indices.contains(valueIndex) { return items[valueIndex].mark }
        return given.mark
    }
}

/// A scenario's `slo:`: a latency percentile's target and the share of errors allowed, e.g.
/// `slo: {p99: 50ms, error-rate: 0.01}`. Over a sweep of the load, each algorithm's throughput at the
/// service level is the highest offered load at which both hold.
public struct ServiceLevel: Sendable, Hashable, CustomStringConvertible {
    /// The percentile: p50, p90, p99 or p99.9.
    public var metric: ExpectedOutcome.Metric
    /// Its target.
    public var target: Duration
    /// The share of requests that may fail (0.01 by default).
    public var errorRate: Double

    public init(metric: ExpectedOutcome.Metric, target: Duration, errorRate: Double) {
        self.metric = metric
        self.target = target
        self.errorRate = errorRate
    }

    /// `p99 <= 50ms, error-rate <= 0.01`.
    public var description: String {
        "\(self.metric.rawValue) <= \(GoDuration.format(self.target)), error-rate <= \(Sweep.Value.number(self.errorRate))"
    }

    static let percentiles: [ExpectedOutcome.Metric] = [.p50, .p90, .p99, .p999]

    init(reading node: ConfigNode) throws(ConfigError) {
        let map = try node.mapping(keys: Self.percentiles.map(\.rawValue) + ["error-rate"])
        let given = Self.percentiles.filter { map.has($0.rawValue) }
        guard given.count == 1 else { throw node.error("give one latency percentile's target (p50, p90, p99 or p99.9), e.g. p99: 50ms") }
        self.metric = given[0]
        self.target = try map.required(given[0].rawValue).duration(atLeast: .microseconds(1))
        self.errorRate = try map["error-rate"]?.double(in: 0...1) ?? 0.01
    }
}
