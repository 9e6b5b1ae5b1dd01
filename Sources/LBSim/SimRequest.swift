/// A request in flight in a simulation, from its due time to the last event that names it.
///
/// Slots are reused: the table holds only the requests in flight, so memory stays flat however many
/// requests a run simulates.
struct SimRequest {
    /// Its number in the run (the `requests.id` it is recorded under).
    var id: Int64 = 0
    /// Its client (0-based).
    var client: Int32 = 0
    /// Its key (`X-LBLab-Key`), or -1 for none.
    var key: Int32 = -1
    /// When it was due at the client (virtual nanoseconds).
    var intended: Int64 = 0
    /// When it reached the proxy.
    var received: Int64 = 0
    /// When the proxy picked its backend.
    var picked: Int64 = 0
    /// When it reached its backend (the upstream side's start, as the proxy records it).
    var upstreamStart: Int64 = 0
    /// When the backend's answer reached the proxy.
    var upstreamDone: Int64 = 0
    /// The backend's index, or -1 before a pick (or when none was available).
    var backend: Int32 = -1
    /// The status the backend (or the proxy) answered.
    var status: Int16 = 0
    /// Whether the backend's answer, once served, is an error (drawn when its service starts).
    var fails = false
    /// Its latency at the backend, drawn when its service starts (virtual nanoseconds).
    var latency: Int64 = 0
    /// The virtual time its CPU work took on a thread.
    var cpu: Int64 = 0
    /// The epoch of its backend when it was sent there; events of an older epoch (before a kill) are
    /// stale. -1 once the backend has answered.
    var epoch: Int32 = -1
    /// Whether the client is done with it (answered, or given up on after its timeout).
    var clientDone = false
    /// Whether no backend event names it any more.
    var backendDone = false

    /// A request due at `intended` from `client`.
    init(id: Int64, client: Int32, key: Int32, intended: Int64) {
        self.id = id
        self.client = client
        self.key = key
        self.intended = intended
    }

    init() {}
}

/// The in-flight requests, in reusable slots.
struct SimRequestTable {
    private(set) var slots: [SimRequest] = []
    private var free: [Int32] = []

    /// Requests in flight.
    private(set) var live = 0

    /// Puts `request` in a free slot and returns the slot.
    mutating func insert(_ request: SimRequest) -> Int {
        self.live += 1
        if let slot = self.free.popLast() {
            self.slots[Int(slot)] = request
            return Int(slot)
        }
        precondition(self.slots.count < SimEvent.subjectLimit, "a simulation holds at most 2^24 requests in flight")
        self.slots.append(request)
        return self.slots.count - 1
    }

    /// Frees `slot` once both the client and the backend are done with it.
    mutating func releaseIfDone(_ slot: Int) {
        guard self.slots[slot].clientDone, self.slots[slot].backendDone else { return }
        self.live -= 1
        self.free.append(Int32(slot))
    }

    subscript(slot: Int) -> SimRequest {
        _read { yield self.slots[slot] }
        _modify { yield &self.slots[slot] }
    }
}
