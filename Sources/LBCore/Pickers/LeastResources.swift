/// Fewest resources in use (`least-resources`): the backend whose CPU or memory use, as a share of its
/// limit, is lowest, read from the resource signal that the stats samplers publish in
/// ``BackendState/resourceUsage``.
///
/// Samples arrive every few hundred milliseconds, and a picker that sent every request to the backend
/// that looked idlest at the last sample would pile them all onto it until the next one (the "herd"
/// of stale load information, Mitzenmacher 2000). The cost is therefore the sampled use times the
/// in-flight requests plus one, divided by weight: each request sent to a backend raises its cost at
/// once, between samples. Use below `floor` counts as `floor`, so idle backends still differ by their
/// in-flight requests. Ties go uniformly at random. O(n) per pick.
public struct LeastResources: SpecializedPicker {
    public var algorithm: Algorithm { .leastResources }
    public var core: LeastLoaded<ResourceLoad>

    /// A least-resources picker; `floor` is the smallest use a backend is assumed to have.
    public init(floor: Double = 0.01, seed: UInt64 = 0) {
        self.core = LeastLoaded<ResourceLoad>(algorithm: .leastResources, signal: ResourceLoad(floor: floor), seed: seed)
    }
}

/// max(resource use, floor) × (in-flight + 1) / weight: the signal of ``LeastResources``.
public struct ResourceLoad: LoadSignal {
    /// The smallest resource use a backend is assumed to have.
    public let floor: Double

    /// The resource signal with the given floor.
    public init(floor: Double) {
        self.floor = floor
    }

    public func load(of backend: Backend, now: Instant) -> Double {
        max(backend.state.resourceUsage, self.floor) * Double(backend.state.inFlight + 1) / backend.weight
    }
}
