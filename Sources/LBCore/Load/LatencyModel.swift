#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How long a synthetic backend takes to serve a request: a distribution sampled per request.
///
/// The same model drives `lbctl backend` on a real socket and the simulator's backends in virtual
/// time, so a scenario means the same thing in both. Written on the command line and in scenario files
/// as `5ms` (fixed), `uniform(1ms,10ms)`, `exponential(5ms)` (mean; also `exp(5ms)`) or
/// `lognormal(5ms,50ms)` (median and 99th percentile).
public enum LatencyModel: Sendable, Hashable, CustomStringConvertible {
    /// Always the same duration.
    case fixed(Duration)
    /// Uniform between the two bounds.
    case uniform(min: Duration, max: Duration)
    /// Exponential with the given mean: the service time of an M/M/c server.
    case exponential(mean: Duration)
    /// Log-normal with the given median and 99th percentile: a long right tail, as real services have.
    case lognormal(median: Duration, p99: Duration)

    /// The standard normal quantile of 0.99, Φ⁻¹(0.99).
    @usableFromInline static let z99 = 2.326_347_874_040_840_8

    /// One service time drawn from the model.
    public func sample(using generator: inout SeededGenerator) -> Duration {
        .nanoseconds(LatencySampler(self).nanoseconds(using: &generator))
    }

    /// The mean service time of the model, for capacity planning and the simulator's checks.
    public var mean: Duration {
        switch self {
        case .fixed(let value): return value
        case .uniform(let low, let high): return (low + high) / 2
        case .exponential(let mean): return mean
        case .lognormal(let median, let p99):
            let sigma = log(Double(p99.nanoseconds) / Double(median.nanoseconds)) / Self.z99
            // Capped as a sample is: a tail wide enough (a 99th percentile 10⁸ times the median) has a
            // mean past it.
            return .nanoseconds(capping: Double(median.nanoseconds) * exp(sigma * sigma / 2))
        }
    }

    /// The model as it is written, e.g. `lognormal(5ms,50ms)`.
    public var description: String {
        switch self {
        case .fixed(let value): GoDuration.format(value)
        case .uniform(let low, let high): "uniform(\(GoDuration.format(low)),\(GoDuration.format(high)))"
        case .exponential(let mean): "exponential(\(GoDuration.format(mean)))"
        case .lognormal(let median, let p99): "lognormal(\(GoDuration.format(median)),\(GoDuration.format(p99)))"
        }
    }

    /// Reads a model written as `5ms`, `uniform(1ms,10ms)`, `exponential(5ms)`, `exp(5ms)` or
    /// `lognormal(5ms,50ms)`.
    public init(parsing text: String) throws(MalformedValue) {
        let trimmed = text.filter { !$0.isWhitespace }
        guard let open = trimmed.firstIndex(of: "(") else {
            self = .fixed(try Self.duration(trimmed, in: text, nonNegative: true))
            return
        }
        guard trimmed.last == ")" else {
            throw MalformedValue(text: text, problem: "is missing its closing parenthesis")
        }
        let name = trimmed[..<open].lowercased()
        let arguments = trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)]
            .split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        func expect(_ count: Int, _ shape: String) throws(MalformedValue) {
            guard arguments.count == count else {
                throw MalformedValue(text: text, problem: "takes \(shape)")
            }
        }
        switch name {
        case "fixed":
            try expect(1, "one duration, e.g. fixed(5ms)")
            self = .fixed(try Self.duration(arguments[0], in: text, nonNegative: true))
        case "uniform":
            try expect(2, "a minimum and a maximum, e.g. uniform(1ms,10ms)")
            let low = try Self.duration(arguments[0], in: text, nonNegative: true)
            let high = try Self.duration(arguments[1], in: text, nonNegative: true)
            guard low <= high else {
                throw MalformedValue(text: text, problem: "has its minimum above its maximum")
            }
            self = .uniform(min: low, max: high)
        case "exponential", "exp":
            try expect(1, "a mean, e.g. exponential(5ms)")
            self = .exponential(mean: try Self.duration(arguments[0], in: text, nonNegative: false))
        case "lognormal":
            try expect(2, "a median and a 99th percentile, e.g. lognormal(5ms,50ms)")
            let median = try Self.duration(arguments[0], in: text, nonNegative: false)
            let p99 = try Self.duration(arguments[1], in: text, nonNegative: false)
            guard p99 > median else {
                throw MalformedValue(text: text, problem: "needs its 99th percentile above its median")
            }
            self = .lognormal(median: median, p99: p99)
        default:
            throw MalformedValue(
                text: text,
                problem: "is not a latency model; use 5ms, uniform(a,b), exponential(mean) or lognormal(median,p99)"
            )
        }
    }

    private static func duration(_ text: String, in whole: String, nonNegative: Bool) throws(MalformedValue)
        -> Duration
    {
        let value: Duration
        do {
            value = try GoDuration.parse(text)
        } catch {
            throw MalformedValue(text: whole, problem: "has a bad duration: \(error)")
        }
        if nonNegative ? value < .zero : value <= .zero {
            throw MalformedValue(text: whole, problem: "needs \(nonNegative ? "non-negative" : "positive") durations")
        }
        return value
    }

    /// A standard normal deviate by the Box–Muller transform.
    @usableFromInline
    static func standardNormal(using generator: inout SeededGenerator) -> Double {
        let u1 = 1 - generator.unitInterval()  // (0, 1]
        let u2 = generator.unitInterval()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
