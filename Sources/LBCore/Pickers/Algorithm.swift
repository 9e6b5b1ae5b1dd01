/// Every load-balancing algorithm LBLab implements, by its canonical name (DESIGN §4).
///
/// Configurations, scenarios and command-line flags accept the canonical name or any alias users
/// bring from HAProxy, nginx, Envoy or the Go balancers LBLab grew from, in any letter case:
/// `Algorithm(name: "LC") == .leastConnections`.
public enum Algorithm: String, CaseIterable, Sendable, Hashable, Codable {
    case roundRobin = "round-robin"
    case weightedRoundRobin = "weighted-round-robin"
    case stickyRoundRobin = "sticky-round-robin"
    case random = "random"
    case weightedRandom = "weighted-random"
    case leastConnections = "least-connections"
    case powerOfTwo = "power-of-two"
    case peakEWMA = "peak-ewma"
    case ipHash = "ip-hash"
    case consistentHash = "consistent-hash"
    case maglev = "maglev"
    case rendezvous = "rendezvous"
    case leastResources = "least-resources"

    /// The canonical name, as configurations and the results store spell it.
    public var name: String { self.rawValue }

    /// Other names accepted for this algorithm, as users of other balancers know them.
    public var aliases: [String] {
        switch self {
        case .roundRobin: ["rr", "RR", "roundrobin", "static-rr"]
        case .weightedRoundRobin: ["wrr", "WRR"]
        case .stickyRoundRobin: ["SRR", "sticky"]
        case .random: []
        case .weightedRandom: []
        case .leastConnections: ["lc", "LC", "leastconn", "least_conn"]
        case .powerOfTwo: ["p2c", "PTC", "least-request"]
        case .peakEWMA: ["ewma"]
        case .ipHash: ["SIH", "source", "ip_hash"]
        case .consistentHash: ["ring-hash", "chwbl"]
        case .maglev: []
        case .rendezvous: ["hrw"]
        case .leastResources: ["least-used-resources"]
        }
    }

    /// One line on what the algorithm does.
    public var summary: String {
        switch self {
        case .roundRobin: "strict rotation over healthy backends"
        case .weightedRoundRobin: "smooth weighted round robin (nginx): exact shares per cycle, no bursts"
        case .stickyRoundRobin: "round robin, then each client keeps its backend while it is healthy"
        case .random: "uniform random choice"
        case .weightedRandom: "random choice in proportion to weight (alias method)"
        case .leastConnections: "fewest in-flight requests per weight, ties broken at random"
        case .powerOfTwo: "least loaded of d random backends (default d = 2)"
        case .peakEWMA: "power of two choices on peak-EWMA latency x (in-flight + 1)"
        case .ipHash: "consistent hash of the client IP (socket or trusted X-Forwarded-For)"
        case .consistentHash: "ketama ring on a request key, with bounded load factor epsilon"
        case .maglev: "Maglev lookup table, prime size M >= 100 x backends (default 65537)"
        case .rendezvous: "highest random weight hashing of a request key"
        case .leastResources: "least CPU or memory in use (share of limit), from figures sent to the admin API"
        }
    }

    /// The algorithm called `name` (canonical or alias, any letter case), or `nil`.
    public init?(name: String) {
        let wanted = name.lowercased()
        guard let match = Self.allCases.first(where: { algorithm in
            algorithm.rawValue == wanted || algorithm.aliases.contains { $0.lowercased() == wanted }
        }) else {
            return nil
        }
        self = match
    }

    /// Makes a picker for this algorithm with the given parameters. Throws when a parameter this
    /// algorithm uses is out of range; parameters it does not use are ignored.
    public func makePicker(_ parameters: PickerParameters = PickerParameters()) throws(PickerParameterError)
        -> any Picker
    {
        try parameters.validate(for: self)
        let seed = parameters.seed
        switch self {
        case .roundRobin: return RoundRobin(seed: seed)
        case .weightedRoundRobin: return SmoothWeightedRoundRobin()
        case .stickyRoundRobin: return StickyRoundRobin(seed: seed, capacity: parameters.stickyCapacity)
        case .random: return RandomPicker(seed: seed)
        case .weightedRandom: return WeightedRandom(seed: seed)
        case .leastConnections: return LeastConnections(seed: seed)
        case .powerOfTwo: return PowerOfTwoChoices(draws: parameters.draws, seed: seed)
        case .peakEWMA:
            return PeakEWMA(
                decay: parameters.decay,
                defaultLatency: parameters.defaultLatency,
                draws: parameters.draws,
                seed: seed
            )
        case .ipHash: return IPHash(virtualNodes: parameters.virtualNodes, seed: seed)
        case .consistentHash:
            return ConsistentHash(
                virtualNodes: parameters.virtualNodes,
                loadFactor: parameters.loadFactor,
                seed: seed
            )
        case .maglev: return Maglev(tableSize: parameters.tableSize, seed: seed)
        case .rendezvous: return Rendezvous(seed: seed)
        case .leastResources:
            return LeastResources(floor: parameters.resourceFloor, maxAge: parameters.resourceMaxAge, seed: seed)
        }
    }
}
