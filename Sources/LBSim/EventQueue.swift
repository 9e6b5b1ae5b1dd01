/// One pending event of a simulation: when it happens, in virtual nanoseconds since the run's start,
/// and what it is, packed with its place in the order events were scheduled.
///
/// Events at the same virtual time happen in the order they were scheduled, so a run is the same
/// whatever the heap's internal order. Sixteen bytes, compared as two integers: the heap moves and
/// compares plain values, and no event allocates.
package struct SimEvent: Comparable {
    /// When, in virtual nanoseconds.
    package var time: Int64
    /// The scheduling sequence (high 36 bits), the kind (4 bits) and the subject (low 24 bits).
    package var packed: UInt64

    static let subjectBits: UInt64 = 24
    static let kindBits: UInt64 = 4
    /// The most subjects (requests in flight, backends) an event can name.
    static let subjectLimit = 1 << 24

    package init(time: Int64, sequence: UInt64, kind: SimEventKind, subject: Int) {
        self.time = time
        self.packed = sequence << (Self.subjectBits + Self.kindBits) | UInt64(kind.rawValue) << Self.subjectBits | UInt64(subject)
    }

    /// What happens.
    var kind: SimEventKind { SimEventKind(rawValue: UInt8(truncatingIfNeeded: (self.packed >> Self.subjectBits) & 0xF))! }

    /// The request slot or backend index the event is about.
    var subject: Int { Int(truncatingIfNeeded: self.packed & ((1 << Self.subjectBits) - 1)) }

    package static func < (lhs: SimEvent, rhs: SimEvent) -> Bool {
        lhs.time != rhs.time ? lhs.time < rhs.time : lhs.packed < rhs.packed
    }
}

/// The kinds of event a simulation schedules. A request's life: it reaches the proxy, which picks a
/// backend and sends it an attempt (a job); the job reaches the backend, waits for a place and a CPU
/// thread, is served, and its answer travels back to the proxy and on to the client.
package enum SimEventKind: UInt8 {
    /// A request reaches the proxy (subject: request slot).
    case reachesProxy
    /// A job reaches its backend (subject: job slot).
    case reachesBackend
    /// A job's CPU work is done (subject: job slot).
    case cpuDone
    /// A job's CPU work is throttled by its backend's quota: its core is free for others (subject: job
    /// slot).
    case coreFreed
    /// A job's latency is over: its backend answers (subject: job slot).
    case served
    /// A job's answer (or its failure) reaches the proxy (subject: job slot).
    case answerReachesProxy
    /// The proxy's answer reaches the client (subject: request slot).
    case answerReachesClient
    /// A retry's backoff is over (subject: request slot).
    case retry
    /// The resources of every backend are sampled (subject: unused).
    case sample
    /// A step of the fault timeline happens (subject: step index).
    case timeline
    /// An active health check of a backend is due (subject: backend index).
    case healthProbe
    /// A health check's answer, or its timeout (subject: backend index).
    case healthProbeDone
    /// An outlier ejection may be over (subject: unused).
    case readmit
    /// Slow-start weights are due again (subject: unused).
    case rampStep
    /// A job's CPU thread has run its time slice and has work left: it waits its turn for a core again
    /// when another thread waits for one (subject: job slot).
    case sliceEnd
}

/// The pending events in time order: a binary min-heap of ``SimEvent`` values in memory of its own,
/// with a sequence number for ties.
///
/// swift-collections' `Heap` is a min-max heap: each step down compares a node's children and
/// grandchildren so that both ends stay reachable. The simulator only ever takes the minimum, and a
/// plain binary heap that moves a hole down (one comparison of the two children and one with the
/// moved event per level, no swaps) did the same work in less time: bench/RESULTS.md ("Simulator
/// speed") has both, measured in one run.
struct EventQueue {
    private var heap = EventHeap()
    private var sequence: UInt64 = 0
    private static let sequenceLimit: UInt64 = 1 << (64 - SimEvent.subjectBits - SimEvent.kindBits)

    /// Events waiting.
    var count: Int { self.heap.count }

    /// The time of the next event, if any.
    var nextTime: Int64? { self.heap.min?.time }

    /// Schedules `kind` about `subject` at `time`.
    mutating func schedule(_ kind: SimEventKind, _ subject: Int, at time: Int64) {
        precondition(self.sequence < Self.sequenceLimit, "a simulation cannot schedule more than 2^36 events")
        self.heap.insert(SimEvent(time: time, sequence: self.sequence, kind: kind, subject: subject))
        self.sequence &+= 1
    }

    /// Takes the next event.
    mutating func next() -> SimEvent? {
        self.heap.popMin()
    }
}

/// A binary min-heap of ``SimEvent``s. Its storage is a buffer of its own, owned by one event queue and
/// never copied while a simulation runs (copies share it), so that no step checks whether an array's
/// buffer is shared. Visible to the package for `SimBenchmarks`, which measures it against `Heap`.
package struct EventHeap {
    private final class Storage {
        var base: UnsafeMutablePointer<SimEvent>
        var capacity: Int
        var count = 0

        init() {
            self.capacity = 256
            self.base = .allocate(capacity: self.capacity)
        }

        func grow() {
            let larger = UnsafeMutablePointer<SimEvent>.allocate(capacity: self.capacity * 2)
            larger.moveInitialize(from: self.base, count: self.count)
            self.base.deallocate()
            self.base = larger
            self.capacity *= 2
        }

        deinit {
            self.base.deinitialize(count: self.count)
            self.base.deallocate()
        }
    }

    private let storage = Storage()

    package init() {}

    package var count: Int { self.storage.count }

    /// The earliest event, if any.
    package var min: SimEvent? { self.storage.count > 0 ? self.storage.base[0] : nil }

    /// Adds `event`: a hole moves up from the end until `event` fits.
    package func insert(_ event: SimEvent) {
        let storage = self.storage
        if storage.count == storage.capacity { storage.grow() }
        let base = storage.base
        var hole = storage.count
        storage.count += 1
        while hole > 0 {
            let parent = (hole - 1) >> 1
            guard event < base[parent] else { break }
            (base + hole).initialize(to: base[parent])
            hole = parent
        }
        (base + hole).initialize(to: event)
    }

    /// Takes the earliest event: the last one moves into the hole at the top and down to its place.
    package func popMin() -> SimEvent? {
        let storage = self.storage
        guard storage.count > 0 else { return nil }
        let base = storage.base
        let top = base[0]
        storage.count -= 1
        let count = storage.count
        guard count > 0 else { return top }
        let last = base[count]
        var hole = 0
        while true {
            var child = 2 * hole + 1
            guard child < count else { break }
            if child + 1 < count, base[child + 1] < base[child] { child += 1 }
            guard base[child] < last else { break }
            base[hole] = base[child]
            hole = child
        }
        base[hole] = last
        return top
    }
}
