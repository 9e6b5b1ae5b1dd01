/// Fewest resources in use (`least-resources`): the backend whose CPU or memory use, as a share of its
/// limit, is lowest, read from the resource figures published in ``BackendState`` by whatever measures
/// the backends (the harness's sampler, an agent calling the proxy's admin API, the simulator).
///
/// Figures arrive every few hundred milliseconds, and a picker that sent every request to the backend
/// that looked idlest at the last figure would pile them all onto it until the next one (the "herd"
/// of stale load information, Mitzenmacher 2000). The cost is therefore the figure times the in-flight
/// requests plus one, divided by weight: each request sent to a backend raises its cost at once,
/// between figures. A figure below `floor` counts as `floor`, so idle backends still differ by their
/// in-flight requests. A backend with no figure younger than `maxAge` counts as fully used (1): with
/// no figures at all the picker balances as least-connections, and a backend whose figures stopped
/// coming gets no more than its in-flight share. Ties go uniformly at random. O(n) per pick.
public struct LeastResources: SpecializedPicker {
    public var algorithm: Algorithm { .leastResources }
    public var core: LeastLoaded<ResourceLoad>

    /// A least-resources picker; `floor` is the smallest use a backend is assumed to have, `maxAge` the
    /// age past which a figure no longer counts.
    public init(floor: Double = 0.01, maxAge: Duration = ResourceLoad.defaultMaxAge, seed: UInt64 = 0) {
        self.core = LeastLoaded<ResourceLoad>(
            algorithm: .leastResources,
            signal: ResourceLoad(floor: floor, maxAge: maxAge),
            seed: seed
        )
    }
}

/// max(resource figure, floor) × (in-flight + 1) / weight, with a missing or stale figure counted as 1:
/// the signal of ``LeastResources``.
public struct ResourceLoad: LoadSignal {
    /// How old a figure may be and still count, unless configured otherwise: eight of the harness's
    /// 250 ms samples.
    public static let defaultMaxAge = Duration.seconds(2)

    /// The smallest resource use a backend is assumed to have.
    public let floor: Double
    /// The age past which a figure no longer counts.
    public let maxAge: Duration

    /// The resource signal with the given floor and maximum age.
    public init(floor: Double, maxAge: Duration = Self.defaultMaxAge) {
        self.floor = floor
        self.maxAge = maxAge
    }

    public func load(of backend: Backend, now: Instant) -> Double {
        let usage = backend.state.resourceUsage(now: now, maxAge: self.maxAge) ?? 1
        return max(usage, self.floor) * Double(backend.state.inFlight + 1) / backend.weight
    }
}
