/// A request in a simulation as the client and the proxy see it, from its due time until both are done
/// with it. Its attempts at backends are ``SimJob``s.
///
/// Slots are reused: the tables hold only what is in flight, so memory stays flat however many requests
/// a run simulates.
struct SimRequest {
    /// Its number in the run (the `requests.id` it is recorded under).
    var id: Int64 = 0
    /// Its client (0-based).
    var client: Int32 = 0
    /// Its key (`X-LBLab-Key`), or -1 for none.
    var key: Int32 = -1
    /// When it was due at the client (virtual nanoseconds, as every time here).
    var intended: Int64 = 0
    /// When it reached the proxy.
    var received: Int64 = 0
    /// When the proxy first picked a backend for it.
    var picked: Int64 = -1
    /// When its current attempt was sent to its backend.
    var attemptStart: Int64 = 0
    /// When its last attempt reached its backend, and when that backend's answer reached the proxy.
    var upstreamStart: Int64 = -1
    var upstreamDone: Int64 = -1
    /// The backend of its current (or last) attempt, or -1.
    var backend: Int32 = -1
    /// The backend its first failed attempt went to, or -1.
    var retriedFrom: Int32 = -1
    /// Attempts made.
    var attempts: Int16 = 0
    /// The status the proxy answered.
    var status: Int16 = 0
    /// The run-wide number of its current attempt: events of an older attempt are stale.
    var attemptID: UInt32 = 0
    /// Whether its current attempt waits for a place under the backend's connection limit.
    var waiting = false
    /// Whether its current attempt holds a place in the retry budget.
    var holdsRetry = false
    /// Whether the client is done with it (answered, or given up on after its timeout).
    var clientDone = false
    /// Whether the proxy is done with it (answered).
    var proxyDone = false
    /// The backends its failed attempts went to, once one failed.
    var tried: [Int32]? = nil
    /// The service time at the backend of the attempt that answered (CPU work and latency).
    var service: Int64 = 0
    /// Whether the answer is its backend's (which names itself in `X-LBLab-Backend`) rather than the
    /// proxy's own.
    var answeredByBackend = false

    /// A request due at `intended` from `client`.
    init(id: Int64, client: Int32, key: Int32, intended: Int64) {
        self.id = id
        self.client = client
        self.key = key
        self.intended = intended
    }

    init() {}
}

/// One attempt of a request at a backend, as the backend sees it: it holds a place, waits for a CPU
/// thread, sleeps its latency and answers, whether or not the proxy still waits for it (a proxy that
/// gave up on an attempt does not stop the backend's work on it).
struct SimJob {
    /// The request's slot, and the attempt it was made for.
    var request: Int32 = 0
    var attemptID: UInt32 = 0
    /// Its backend.
    var backend: Int32 = 0
    /// The backend's epoch when the job was sent; an older epoch than the backend's (a kill came
    /// between) makes the job's events stale.
    var epoch: Int32 = 0
    /// Its latency and CPU time at the backend, drawn when its service starts.
    var latency: Int64 = 0
    var cpu: Int64 = 0
    /// Whether its answer is a 500, drawn when its service starts.
    var fails = false
    /// What reaches the proxy: a status, or a failure without one.
    var outcome = SimAttemptOutcome.status(0)
    /// Events scheduled about it and not yet handled: its slot is reused only when none are left and
    /// its answer has reached the proxy, so that a stale event never acts on another job.
    var pendingEvents: Int32 = 0
    /// Whether its answer has reached the proxy.
    var finished = false
}

/// How an attempt ended, as the proxy sees it.
enum SimAttemptOutcome: Equatable {
    /// The backend answered with this status.
    case status(Int16)
    /// The connection was refused (the backend's process is gone).
    case refused
    /// The connection broke before an answer (the backend was killed while it held the request).
    case reset
}

/// Reusable slots of `Element`s, each in use or free.
struct SlotTable<Element> {
    private(set) var slots: [Element] = []
    private var free: [Int32] = []
    /// Slots in use.
    private(set) var live = 0

    /// Puts `element` in a free slot and returns the slot.
    mutating func insert(_ element: Element) -> Int {
        self.live += 1
        if let slot = self.free.popLast() {
            self.slots[Int(slot)] = element
            return Int(slot)
        }
        precondition(self.slots.count < SimEvent.subjectLimit, "a simulation holds at most 2^24 requests in flight")
        self.slots.append(element)
        return self.slots.count - 1
    }

    /// Frees `slot`.
    mutating func remove(_ slot: Int) {
        self.live -= 1
        self.free.append(Int32(slot))
    }

    subscript(slot: Int) -> Element {
        _read { yield self.slots[slot] }
        _modify { yield &self.slots[slot] }
    }
}

/// Deadlines of one fixed length each, in the order they were set: a timeout per request or attempt
/// without a heap, since a later start means a later deadline.
struct DeadlineQueue<Payload> {
    private var entries: [(deadline: Int64, payload: Payload)] = []
    private var head = 0

    /// The earliest deadline not yet taken.
    var next: Int64? { self.head < self.entries.count ? self.entries[self.head].deadline : nil }

    /// Adds a deadline, not earlier than the last one added.
    mutating func append(_ deadline: Int64, _ payload: Payload) {
        self.entries.append((deadline, payload))
    }

    /// Takes the earliest deadline's payload.
    mutating func pop() -> Payload {
        let payload = self.entries[self.head].payload
        self.head += 1
        if self.head >= 4_096 && self.head * 2 >= self.entries.count {
            self.entries.removeFirst(self.head)
            self.head = 0
        }
        return payload
    }
}
