/// Slow start (HAProxy's `slowstart`, Envoy's `slow_start_config`): a backend that just joined or
/// recovered takes a growing share of traffic instead of its full share at once, so that a cold cache
/// or JIT is not flooded.
///
/// Its effective weight ramps linearly from `minimumShare` × weight to the full weight over `window`
/// after it became available:
///
///     effective(t) = weight × max(minimumShare, min(1, (t − since) / window))
///
/// The executor re-computes effective weights every ``step`` while any backend is ramping and rebuilds
/// the pickers with them; a `window` of zero turns slow start off.
public struct SlowStart: Sendable, Hashable, Codable {
    /// How long the ramp lasts.
    public var window: Duration
    /// The share of its weight a backend gets at the start of the ramp (0...1).
    public var minimumShare: Double

    /// A ramp over `window` starting at `minimumShare` (Envoy's default minimum is 10%).
    public init(window: Duration, minimumShare: Double = 0.1) {
        self.window = window
        self.minimumShare = min(1, max(0, minimumShare))
    }

    /// No slow start.
    public static let off = SlowStart(window: .zero)

    /// The share of its weight a backend available since `since` gets at `now`, in (0, 1].
    public func share(since: Instant, now: Instant) -> Double {
        guard self.window > .zero else { return 1 }
        let elapsed = (now - since) / self.window
        return max(self.minimumShare, min(1, elapsed))
    }

    /// The effective weight at `now` of a backend of weight `weight` available since `since`.
    public func effectiveWeight(_ weight: Double, since: Instant, now: Instant) -> Double {
        weight * self.share(since: since, now: now)
    }

    /// Whether a backend available since `since` is still ramping at `now`.
    public func isRamping(since: Instant, now: Instant) -> Bool {
        self.window > .zero && now - since < self.window
    }

    /// How often effective weights are worth re-computing during a ramp: 1/20 of the window, as
    /// HAProxy's weight steps are, and never more often than every 10 ms.
    public var step: Duration {
        max(self.window / 20, .milliseconds(10))
    }
}
