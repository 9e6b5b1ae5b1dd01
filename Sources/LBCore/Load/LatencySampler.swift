#if canImport(Glibc)
public import Glibc
#elseif canImport(Musl)
public import Musl
#elseif canImport(Darwin)
public import Darwin
#endif

/// A ``LatencyModel`` ready to draw from, its parameters in nanoseconds: the draws of
/// ``LatencyModel/sample(using:)``, which `lbctl backend` makes per request, and of the simulator,
/// which keeps one per backend so that a draw costs no `Duration` arithmetic.
public struct LatencySampler: Sendable, Hashable {
    @usableFromInline
    enum Shape: Sendable, Hashable {
        case fixed(Int64)
        case uniform(low: Double, span: Double)
        case exponential(mean: Double)
        case lognormal(mu: Double, sigma: Double)
    }

    @usableFromInline let shape: Shape

    /// The sampler of `model`.
    public init(_ model: LatencyModel) {
        switch model {
        case .fixed(let value):
            self.shape = .fixed(value.nanoseconds)
        case .uniform(let low, let high):
            let lo = Double(low.nanoseconds)
            self.shape = .uniform(low: lo, span: Double(high.nanoseconds) - lo)
        case .exponential(let mean):
            self.shape = .exponential(mean: Double(mean.nanoseconds))
        case .lognormal(let median, let p99):
            let mu = log(Double(median.nanoseconds))
            let sigma = log(Double(p99.nanoseconds) / Double(median.nanoseconds)) / LatencyModel.z99
            self.shape = .lognormal(mu: mu, sigma: sigma)
        }
    }

    /// One draw in whole nanoseconds, capped at 9·10¹⁸.
    @inlinable
    public func nanoseconds(using generator: inout SeededGenerator) -> Int64 {
        let nanos: Double
        switch self.shape {
        case .fixed(let value):
            return value
        case .uniform(let low, let span):
            nanos = low + span * generator.unitInterval()
        case .exponential(let mean):
            // Inversion: −mean·ln(U) with U in (0, 1].
            nanos = -mean * log(1 - generator.unitInterval())
        case .lognormal(let mu, let sigma):
            nanos = exp(mu + sigma * LatencyModel.standardNormal(using: &generator))
        }
        // Not negative: + 0.5 and truncation round to the nearest, as `rounded()` does, without its call.
        return Int64(min(nanos + 0.5, 9e18))
    }
}
