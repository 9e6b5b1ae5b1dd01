/// A point on a monotonic clock, in nanoseconds from an origin the caller chooses.
///
/// LBCore never reads a clock. Every call that depends on time takes `now` as an argument, so the proxy
/// passes the real monotonic clock and the simulator passes virtual time, and both run the same code.
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the caller's origin.
    public var nanoseconds: Int64

    /// Creates an instant `nanoseconds` after the origin.
    @inlinable
    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    /// The origin itself.
    public static let zero = Instant(nanoseconds: 0)

    @inlinable
    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    /// The instant `duration` after `lhs`.
    @inlinable
    public static func + (lhs: Instant, rhs: Duration) -> Instant {
        Instant(nanoseconds: lhs.nanoseconds &+ rhs.nanoseconds)
    }

    /// The instant `duration` before `lhs`.
    @inlinable
    public static func - (lhs: Instant, rhs: Duration) -> Instant {
        Instant(nanoseconds: lhs.nanoseconds &- rhs.nanoseconds)
    }

    /// The time from `rhs` to `lhs` (negative when `lhs` is earlier).
    @inlinable
    public static func - (lhs: Instant, rhs: Instant) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    public var description: String {
        "\(Duration.nanoseconds(self.nanoseconds))"
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating at `Int64`'s bounds (about 292 years).
    @inlinable
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        let (fromSeconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow {
            return seconds < 0 ? .min : .max
        }
        let (sum, overflow2) = fromSeconds.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 {
            return seconds < 0 ? .min : .max
        }
        return sum
    }

    /// `nanos` (not negative) as whole nanoseconds, capped at 9·10¹⁸ (about 285 years): a sample or a
    /// wait computed in floating point may come out past what `Int64` holds, which would trap.
    @inlinable
    public static func nanoseconds(capping nanos: Double) -> Duration {
        .nanoseconds(Int64(min(nanos, 9e18)))
    }

    /// The duration in seconds, as a floating-point number.
    @inlinable
    public var seconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}
