import DequeModule

/// Round robin with client affinity (`sticky-round-robin`): a client's first request is placed by
/// round robin, and its later requests go to the same backend for as long as that backend is eligible.
///
/// The client is identified by ``PickRequest/clientKey`` (the hash of its address, or of a sticky
/// cookie when the proxy is configured to issue one). When the remembered backend is removed or stops
/// being eligible, the client is placed again by round robin and remembered there. Requests without
/// a client key are placed by plain round robin.
///
/// At most `capacity` clients are remembered; past that the oldest assignment is forgotten, so memory
/// stays bounded under any number of clients. O(1) per pick.
public struct StickyRoundRobin: Picker {
    public var algorithm: Algorithm { .stickyRoundRobin }

    private var rotation: RoundRobin
    private var backends: [Backend] = []
    /// The snapshot index of each backend, by identity of its live state.
    private var indexByState: [ObjectIdentifier: Int] = [:]
    /// Each remembered client's backend.
    private var assignments: [UInt64: ObjectIdentifier] = [:]
    /// Remembered clients, oldest first, for eviction.
    private var insertionOrder: Deque<UInt64> = []
    private let capacity: Int

    /// A sticky round-robin picker remembering at most `capacity` clients.
    public init(seed: UInt64 = 0, capacity: Int = 65_536) {
        precondition(capacity > 0, "StickyRoundRobin capacity must be positive")
        self.rotation = RoundRobin(seed: seed)
        self.capacity = capacity
    }

    /// How many clients are currently remembered.
    public var rememberedClients: Int { self.assignments.count }

    public mutating func rebuild(_ backends: [Backend]) {
        self.rotation.rebuild(backends)
        self.backends = backends
        self.indexByState = [:]
        for (index, backend) in backends.enumerated() {
            self.indexByState[ObjectIdentifier(backend.state)] = index
        }
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        guard let client = request.clientKey else {
            return self.rotation.pick(request)
        }
        if let assigned = self.assignments[client], let index = self.indexByState[assigned],
            self.backends[index].isEligible
        {
            return index
        }
        guard let index = self.rotation.pick(request) else { return nil }
        if self.assignments.updateValue(ObjectIdentifier(self.backends[index].state), forKey: client) == nil {
            self.insertionOrder.append(client)
            if self.insertionOrder.count > self.capacity, let oldest = self.insertionOrder.popFirst() {
                self.assignments[oldest] = nil
            }
        }
        return index
    }
}
