/// Fully jittered exponential backoff (the "full jitter" of Brooker, AWS Architecture Blog, 2015;
/// Envoy's retry back-off).
///
/// Before retry k (1 for the first retry) the wait is drawn uniformly from [0, min(max, base × 2^(k−1))]:
///
/// | retry | upper bound (base 25 ms, max 250 ms) |
/// |-------|---------------------------------------|
/// | 1     | 25 ms                                 |
/// | 2     | 50 ms                                 |
/// | 3     | 100 ms                                |
/// | 4     | 200 ms                                |
/// | 5+    | 250 ms                                |
///
/// Drawing the whole interval at random keeps retries from many clients from arriving in waves.
public struct Backoff: Sendable, Hashable, Codable {
    /// The upper bound of the first wait.
    public var base: Duration
    /// No wait's upper bound exceeds this.
    public var max: Duration

    /// Envoy's defaults: 25 ms base, ten times that at most.
    public init(base: Duration = .milliseconds(25), max: Duration = .milliseconds(250)) {
        self.base = base
        self.max = max
    }

    /// The upper bound of the wait before retry `retry` (1-based).
    public func upperBound(beforeRetry retry: Int) -> Duration {
        let doublings = Swift.min(Swift.max(retry - 1, 0), 62)
        let bound = Double(self.base.nanoseconds) * Double(UInt64(1) << UInt64(doublings))
        return .nanoseconds(Int64(Swift.min(bound, Double(self.max.nanoseconds))))
    }

    /// A wait drawn uniformly from [0, upperBound(beforeRetry: retry)].
    public func delay(beforeRetry retry: Int, using generator: inout SeededGenerator) -> Duration {
        let bound = self.upperBound(beforeRetry: retry).nanoseconds
        guard bound > 0 else { return .zero }
        return .nanoseconds(Int64(generator.next(upperBound: UInt64(bound) + 1)))
    }
}
