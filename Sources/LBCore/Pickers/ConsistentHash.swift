/// Consistent hashing with bounded loads (`consistent-hash`; HAProxy's `hash-type consistent` with
/// `hash-balance-factor`, Envoy's `RING_HASH`).
///
/// Keys are placed on a ketama ring (``HashRing``, `virtualNodes` points per unit of weight); a key
/// goes to the owner of the first point clockwise from its hash whose backend is eligible. So removing
/// or losing one of n backends remaps only its own ~1/n of the keys, and the same key reaches the same
/// backend for as long as that backend is there.
///
/// With a load factor ε (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads",
/// 2018), a backend also counts as full when it already holds ⌈(1+ε)·(m+1)·wᵢ/W⌉ of the m requests in
/// flight over the eligible backends (W their total weight), and the walk continues clockwise past it.
/// No backend then ever holds more than ⌈(1+ε)·average⌉, while keys still stay put unless their backend
/// is full. The bound costs an O(n) sum of in-flight requests per pick; without it a pick is
/// O(log(n·v)).
///
/// The key is ``PickRequest/hashKey`` (the configured header, cookie or path), else the client key;
/// requests with neither go to a random point.
public struct ConsistentHash: Picker {
    public let algorithm: Algorithm
    private let virtualNodes: Int
    private let loadFactor: Double?
    private let useClientKeyOnly: Bool
    private var backends: [Backend] = []
    private var ring = HashRing(backends: [], pointsPerUnitWeight: 1)
    private var generator: SeededGenerator

    /// A consistent-hash picker with `virtualNodes` ring points per unit of weight and bounded load
    /// factor ε = `loadFactor` (`nil`: unbounded).
    public init(virtualNodes: Int = 160, loadFactor: Double? = 0.25, seed: UInt64 = 0) {
        self.init(algorithm: .consistentHash, virtualNodes: virtualNodes, loadFactor: loadFactor, seed: seed)
    }

    init(algorithm: Algorithm, virtualNodes: Int, loadFactor: Double?, clientKeyOnly: Bool = false, seed: UInt64) {
        precondition(virtualNodes >= 1, "ConsistentHash needs at least one point per backend")
        precondition(loadFactor.map { $0 > 0 } ?? true, "ConsistentHash load factor must be positive")
        self.algorithm = algorithm
        self.virtualNodes = virtualNodes
        self.loadFactor = loadFactor
        self.useClientKeyOnly = clientKeyOnly
        self.generator = SeededGenerator(seed: seed)
    }

    public mutating func rebuild(_ backends: [Backend]) {
        self.backends = backends
        self.ring = HashRing(backends: backends, pointsPerUnitWeight: self.virtualNodes)
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        guard !self.ring.isEmpty else { return nil }
        let key =
            (self.useClientKeyOnly ? request.clientKey : request.hashKey ?? request.clientKey)
            ?? self.generator.next()
        let start = self.ring.firstPoint(atOrAfter: key)
        guard let loadFactor = self.loadFactor else {
            return self.walk(from: start) { _ in true }
        }
        var inFlight = 0
        var totalWeight = 0.0
        for backend in self.backends where backend.isEligible {
            inFlight += backend.state.inFlight
            totalWeight += backend.weight
        }
        guard totalWeight > 0 else { return nil }
        let perUnitWeight = (1 + loadFactor) * Double(inFlight + 1) / totalWeight
        return self.walk(from: start) { backend in
            Double(backend.state.inFlight) < (perUnitWeight * backend.weight).rounded(.up)
        }
    }

    /// The first eligible owner clockwise from `start` that `accepts`.
    private func walk(from start: Int, accepts: (Backend) -> Bool) -> Int? {
        var point = start
        for _ in 0..<self.ring.count {
            let owner = Int(self.ring.owners[point])
            let backend = self.backends[owner]
            if backend.isEligible && accepts(backend) {
                return owner
            }
            point = point + 1 == self.ring.count ? 0 : point + 1
        }
        return nil
    }
}
