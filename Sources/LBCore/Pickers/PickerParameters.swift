/// The tunable parameters of the algorithms; each algorithm reads only its own.
public struct PickerParameters: Sendable, Hashable, Codable {
    /// Seeds the picker's random generator; the same seed and calls give the same picks.
    public var seed: UInt64 = 0
    /// `power-of-two`, `peak-ewma`: how many backends are drawn per pick (d).
    public var draws: Int = 2
    /// `peak-ewma`: τ, the decay time of the latency estimate.
    public var decay: Duration = .seconds(10)
    /// `peak-ewma`: the latency assumed for a backend not yet measured.
    public var defaultLatency: Duration = .milliseconds(1)
    /// `consistent-hash`, `ip-hash`: ring points per unit of weight.
    public var virtualNodes: Int = 160
    /// `consistent-hash`: the bounded-load factor ε; `nil` turns the bound off.
    public var loadFactor: Double? = 0.25
    /// `maglev`: the lookup table size M, a prime.
    public var tableSize: Int = 65_537
    /// `sticky-round-robin`: how many clients are remembered at most.
    public var stickyCapacity: Int = 65_536
    /// `least-resources`: the smallest resource use a backend is assumed to have.
    public var resourceFloor: Double = 0.01
    /// `least-resources`: how old a backend's resource figure may be and still count.
    public var resourceMaxAge: Duration = ResourceLoad.defaultMaxAge

    /// The defaults of every algorithm.
    public init() {}

    /// Checks the parameters `algorithm` uses.
    public func validate(for algorithm: Algorithm) throws(PickerParameterError) {
        switch algorithm {
        case .powerOfTwo, .peakEWMA:
            guard (1...64).contains(self.draws) else {
                throw .init(parameter: "draws", problem: "must be between 1 and 64, got \(self.draws)")
            }
            if algorithm == .peakEWMA {
                guard self.decay > .zero else {
                    throw .init(parameter: "decay", problem: "must be a positive duration, got \(self.decay)")
                }
                guard self.defaultLatency > .zero else {
                    throw .init(
                        parameter: "default-latency",
                        problem: "must be a positive duration, got \(self.defaultLatency)"
                    )
                }
            }
        case .consistentHash, .ipHash:
            guard (1...10_000).contains(self.virtualNodes) else {
                throw .init(
                    parameter: "virtual-nodes",
                    problem: "must be between 1 and 10000, got \(self.virtualNodes)"
                )
            }
            if algorithm == .consistentHash, let epsilon = self.loadFactor, !(epsilon > 0 && epsilon.isFinite) {
                throw .init(parameter: "load-factor", problem: "must be a positive number, got \(epsilon)")
            }
        case .maglev:
            guard self.tableSize >= 2, self.tableSize <= 100_000_007, Primes.isPrime(self.tableSize) else {
                throw .init(
                    parameter: "table-size",
                    problem: "must be a prime between 2 and 100000007 (e.g. 65537), got \(self.tableSize)"
                )
            }
        case .stickyRoundRobin:
            guard self.stickyCapacity >= 1 else {
                throw .init(
                    parameter: "sticky-capacity",
                    problem: "must be at least 1, got \(self.stickyCapacity)"
                )
            }
        case .leastResources:
            guard self.resourceFloor > 0, self.resourceFloor.isFinite else {
                throw .init(
                    parameter: "resource-floor",
                    problem: "must be a positive number, got \(self.resourceFloor)"
                )
            }
            guard self.resourceMaxAge > .zero else {
                throw .init(
                    parameter: "resource-max-age",
                    problem: "must be a positive duration, got \(self.resourceMaxAge)"
                )
            }
        case .roundRobin, .weightedRoundRobin, .random, .weightedRandom, .leastConnections, .rendezvous:
            break
        }
    }
}

/// A picker parameter out of range: names the parameter and says what was expected.
public struct PickerParameterError: Error, Hashable, CustomStringConvertible {
    /// The parameter's name as configuration files spell it.
    public let parameter: String
    /// What is wrong with it.
    public let problem: String

    /// An error for `parameter`, saying `problem`.
    public init(parameter: String, problem: String) {
        self.parameter = parameter
        self.problem = problem
    }

    public var description: String { "\(self.parameter): \(self.problem)" }
}
