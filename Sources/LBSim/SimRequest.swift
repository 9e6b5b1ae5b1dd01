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
    /// Whether an attempt of it failed (its backends are in `Simulation.tried`).
    var failedBefore = false
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
    /// Until when its CPU work holds one of the host's cores, or -1 while it holds none.
    var coreUntil: Int64 = -1
    /// Whether the backend has read it (spent its own CPU on it), so that it may take a place.
    var read = false
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
    /// The CPU work of its current stretch (reading it, or serving it) not yet run.
    var cpuLeft: Int64 = 0
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

/// Reusable slots of `Element`s (plain values without references), each in use or free.
///
/// The elements live in memory the table allocates itself, so that the simulator's many writes to a
/// slot each touch the slot alone, with no check that an array's buffer is not shared: a table is
/// owned by one simulation and never copied while that runs (copies share the slots).
struct SlotTable<Element> {
    private final class Storage {
        var base: UnsafeMutablePointer<Element>
        var capacity: Int
        var count = 0
        /// The free slots, a stack of `freeCount` (never more than `capacity`): in memory of its own
        /// too, as an array in a class would be checked for exclusive access at every push and pop.
        var free: UnsafeMutablePointer<Int32>
        var freeCount = 0
        var live = 0

        init() {
            self.capacity = 1_024
            self.base = .allocate(capacity: self.capacity)
            self.free = .allocate(capacity: self.capacity)
        }

        func grow() {
            let larger = UnsafeMutablePointer<Element>.allocate(capacity: self.capacity * 2)
            larger.moveInitialize(from: self.base, count: self.count)
            self.base.deallocate()
            self.base = larger
            let largerFree = UnsafeMutablePointer<Int32>.allocate(capacity: self.capacity * 2)
            largerFree.initialize(from: self.free, count: self.freeCount)
            self.free.deallocate()
            self.free = largerFree
            self.capacity *= 2
        }

        deinit {
            self.base.deinitialize(count: self.count)
            self.base.deallocate()
            self.free.deallocate()
        }
    }

    private let storage = Storage()

    /// Slots in use.
    var live: Int { self.storage.live }
    /// Slots ever used (in use or free).
    var count: Int { self.storage.count }

    /// Puts `element` in a free slot and returns the slot.
    func insert(_ element: Element) -> Int {
        let storage = self.storage
        storage.live += 1
        if storage.freeCount > 0 {
            storage.freeCount -= 1
            let slot = Int(storage.free[storage.freeCount])
            storage.base[slot] = element
            return slot
        }
        precondition(storage.count < SimEvent.subjectLimit, "a simulation holds at most 2^24 requests in flight")
        if storage.count == storage.capacity { storage.grow() }
        (storage.base + storage.count).initialize(to: element)
        storage.count += 1
        return storage.count - 1
    }

    /// Frees `slot`.
    func remove(_ slot: Int) {
        let storage = self.storage
        storage.live -= 1
        storage.free[storage.freeCount] = Int32(slot)
        storage.freeCount += 1
    }

    subscript(slot: Int) -> Element {
        get { self.storage.base[slot] }
        nonmutating set { self.storage.base[slot] = newValue }
        nonmutating _modify { yield &self.storage.base[slot] }
    }
}

/// A fixed number of `Element`s (the backends, and what the proxy keeps per backend) in memory the
/// table allocates itself, for the same reason as ``SlotTable``: each write touches the element alone,
/// with no check that an array's buffer is shared. Owned by one simulation and never copied while that
/// runs (copies share the elements).
struct FixedTable<Element>: RandomAccessCollection {
    private final class Storage {
        let base: UnsafeMutablePointer<Element>
        let count: Int

        init(_ elements: [Element]) {
            self.count = elements.count
            self.base = .allocate(capacity: Swift.max(1, elements.count))
            _ = UnsafeMutableBufferPointer(start: self.base, count: elements.count).initialize(from: elements)
        }

        deinit {
            self.base.deinitialize(count: self.count)
            self.base.deallocate()
        }
    }

    private let storage: Storage

    init(_ elements: [Element]) {
        self.storage = Storage(elements)
    }

    var startIndex: Int { 0 }
    var endIndex: Int { self.storage.count }

    subscript(index: Int) -> Element {
        get {
            precondition(index >= 0 && index < self.storage.count, "index out of range")
            return self.storage.base[index]
        }
        nonmutating _modify {
            precondition(index >= 0 && index < self.storage.count, "index out of range")
            yield &self.storage.base[index]
        }
        nonmutating set {
            precondition(index >= 0 && index < self.storage.count, "index out of range")
            self.storage.base[index] = newValue
        }
    }
}

/// Deadlines of one fixed length each, in the order they were set: a timeout per request or attempt
/// without a heap, since a later start means a later deadline.
///
/// A ring in memory of its own (as ``SlotTable``'s), compacted in place: a queue that held a copy of
/// its entries at each compaction spent a tenth of the simulator's time growing it again. Owned by one
/// simulation and never copied while that runs.
struct DeadlineQueue<Payload> {
    private final class Storage {
        var deadlines: UnsafeMutablePointer<Int64>
        var payloads: UnsafeMutablePointer<Payload>
        /// Slots, a power of two; entries from `head`, `count` of them.
        var capacity = 1_024
        var head = 0
        var count = 0

        init() {
            self.deadlines = .allocate(capacity: self.capacity)
            self.payloads = .allocate(capacity: self.capacity)
        }

        deinit {
            for offset in 0..<self.count { (self.payloads + self.slot(offset)).deinitialize(count: 1) }
            self.deadlines.deallocate()
            self.payloads.deallocate()
        }

        func slot(_ offset: Int) -> Int {
            (self.head + offset) & (self.capacity - 1)
        }

        func grow() {
            let deadlines = UnsafeMutablePointer<Int64>.allocate(capacity: self.capacity * 2)
            let payloads = UnsafeMutablePointer<Payload>.allocate(capacity: self.capacity * 2)
            for offset in 0..<self.count {
                let from = self.slot(offset)
                deadlines[offset] = self.deadlines[from]
                (payloads + offset).moveInitialize(from: self.payloads + from, count: 1)
            }
            self.deadlines.deallocate()
            self.payloads.deallocate()
            (self.deadlines, self.payloads) = (deadlines, payloads)
            self.capacity *= 2
            self.head = 0
        }
    }

    private let storage = Storage()

    /// The earliest deadline not yet taken: kept apart from the entries, since the event loop reads it
    /// at every step and it changes only when the first deadline is added or taken.
    private(set) var next: Int64?

    /// Deadlines held.
    var count: Int { self.storage.count }

    /// Adds a deadline, not earlier than the last one added.
    mutating func append(_ deadline: Int64, _ payload: Payload) {
        let storage = self.storage
        if storage.count == 0 { self.next = deadline }
        if storage.count == storage.capacity { storage.grow() }
        let slot = storage.slot(storage.count)
        storage.deadlines[slot] = deadline
        (storage.payloads + slot).initialize(to: payload)
        storage.count += 1
    }

    /// Whether ``compact(live:isSettled:)`` would look at the deadlines now: checked first by callers,
    /// so that the closure (and what it holds) is made only then.
    func needsCompacting(live: Int) -> Bool {
        self.storage.count > 2 * live + 4_096
    }

    /// Takes the earliest deadline's payload.
    mutating func pop() -> Payload {
        let storage = self.storage
        precondition(storage.count > 0, "pop() on an empty DeadlineQueue")
        let payload = (storage.payloads + storage.head).move()
        storage.head = storage.slot(1)
        storage.count -= 1
        self.next = storage.count > 0 ? storage.deadlines[storage.head] : nil
        return payload
    }

    /// Drops the deadlines `isSettled` says no longer matter (their request answered), once there are
    /// more than twice `live` and a few thousand: a long timeout then holds no more memory than the
    /// requests in flight, and each deadline is looked at a bounded number of times.
    mutating func compact(live: Int, isSettled: (Payload) -> Bool) {
        guard self.needsCompacting(live: live) else { return }
        let storage = self.storage
        var kept = 0
        for offset in 0..<storage.count {
            let from = storage.slot(offset)
            let payload = (storage.payloads + from).move()
            guard !isSettled(payload) else { continue }
            let to = storage.slot(kept)
            storage.deadlines[to] = storage.deadlines[from]
            (storage.payloads + to).initialize(to: payload)
            kept += 1
        }
        storage.count = kept
        self.next = kept > 0 ? storage.deadlines[storage.head] : nil
    }
}
