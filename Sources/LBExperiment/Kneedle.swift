/// The knee of a curve that rises slowly and then sharply (a latency percentile against offered load),
/// by the Kneedle method: V. Satopää, J. Albrecht, D. Irwin and B. Raghavan, "Finding a 'Kneedle' in a
/// Haystack: Detecting Knee Points in System Behavior", ICDCS Workshops 2011, pp. 166–171.
///
/// Both axes are scaled to [0, 1]; for an increasing convex curve the difference curve is `x − y`, how
/// far the curve lies below the straight line from its first point to its last; the knee is where that
/// difference is largest, provided the curve then turns away from it: a later point's difference falls
/// below the paper's threshold, the maximum less `sensitivity` times the mean step between scaled x
/// values. A curve that never bends (or only at its last point) has no knee.
public enum Kneedle {
    /// A knee: the point it is at, its place among the points, and its difference.
    public struct Knee: Sendable, Hashable {
        public var x: Double
        public var y: Double
        public var index: Int
        public var difference: Double
    }

    /// The knee of the points (`x` strictly increasing, `y` rising overall), or `nil` when there are
    /// fewer than three points or the curve does not bend upward within them.
    public static func knee(x: [Double], y: [Double], sensitivity: Double = 1) -> Knee? {
        precondition(x.count == y.count, "one y per x")
        let n = x.count
        guard n >= 3, zip(x, x.dropFirst()).allSatisfy({ $0 < $1 }) else { return nil }
        guard let low = y.min(), let high = y.max(), high > low, y[n - 1] > y[0] else { return nil }
        let scaledX = x.map { ($0 - x[0]) / (x[n - 1] - x[0]) }
        let scaledY = y.map { ($0 - low) / (high - low) }
        let difference = zip(scaledX, scaledY).map { $0 - $1 }
        guard let best = difference.indices.max(by: { difference[$0] < difference[$1] }), difference[best] > 0 else { return nil }
        let meanStep = 1 / Double(n - 1)
        let threshold = difference[best] - sensitivity * meanStep
        guard difference[(best + 1)...].contains(where: { $0 < threshold }) else { return nil }
        return Knee(x: x[best], y: y[best], index: best, difference: difference[best])
    }
}

/// The highest offered load at which a service level holds (its latency percentile at or under a
/// target, its errors at or under a share), from points measured at increasing loads.
public enum ServiceLevelSearch {
    /// Where the service level stops holding, as the points tell.
    public enum Finding: Sendable, Hashable {
        /// It holds up to this load, interpolated between the last point where it holds and the next.
        case interpolated(Double, between: Double, and: Double)
        /// It holds at every point: at least the last one.
        case atLeast(Double)
        /// It fails at the first point already: below it.
        case below(Double)

        /// The load, or the bound, it names.
        public var value: Double {
            switch self {
            case .interpolated(let value, _, _), .atLeast(let value), .below(let value): value
            }
        }
    }

    /// The finding from points at `load` (increasing) with their `latency` and `errorRate`: the last
    /// point before the first that fails, and from there linearly toward that one, to where the
    /// latency reaches `latencyTarget` or the error rate reaches `errorTarget`, whichever comes first.
    public static func interpolate(load: [Double], latency: [Double], errorRate: [Double], latencyTarget: Double, errorTarget: Double) -> Finding? {
        precondition(load.count == latency.count && load.count == errorRate.count, "one figure of each per load")
        guard !load.isEmpty else { return nil }
        let holds = load.indices.map { latency[$0] <= latencyTarget && errorRate[$0] <= errorTarget }
        guard let failing = holds.firstIndex(of: false) else { return .atLeast(load[load.count - 1]) }
        guard failing > 0 else { return .below(load[0]) }
        let (a, b) = (failing - 1, failing)
        // Each figure's crossing between the two points, as a share of the way from a to b.
        func crossing(_ values: [Double], _ target: Double) -> Double {
            guard values[b] > target else { return 1 }
            guard values[b] > values[a] else { return 0 }
            return min(1, max(0, (target - values[a]) / (values[b] - values[a])))
        }
        let share = min(crossing(latency, latencyTarget), crossing(errorRate, errorTarget))
        return .interpolated(load[a] + share * (load[b] - load[a]), between: load[a], and: load[b])
    }
}
