import LBCore
import Synchronization

/// What the workers of one load run share: the start time, request numbering, where records go, and the
/// run's backend ids.
final class LoadRunContext: Sendable {
    /// The monotonic time (nanoseconds) the schedule counts from; records count microseconds from it.
    let t0Nanos: UInt64
    /// Time zero of the records (monotonic uptime nanoseconds): t0, or the start of the experiment the
    /// load is part of.
    let recordOriginNanos: UInt64
    /// Where request records go, if anywhere.
    let sink: (any RecordSink)?
    /// Whether there is a sink: asked once a request, and cheaper than copying the optional existential
    /// to compare it with `nil`.
    let records: Bool
    private let nextRequestID = Atomic<Int64>(0)
    /// Backend ids by name: given before the run (by `lbctl run`, which recorded them), or numbered
    /// from 0 as names are first seen.
    private let backendIDs: Mutex<[String: Int]>

    init(t0Nanos: UInt64, recordOriginNanos: UInt64? = nil, sink: (any RecordSink)?, backendIDs: [String: Int] = [:]) {
        self.t0Nanos = t0Nanos
        self.recordOriginNanos = recordOriginNanos ?? t0Nanos
        self.sink = sink
        self.records = sink != nil
        self.backendIDs = Mutex(backendIDs)
    }

    /// A request number unique in the run.
    func newRequestID() -> Int64 {
        self.nextRequestID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Requests numbered so far.
    var requestsNumbered: Int64 {
        self.nextRequestID.load(ordering: .relaxed)
    }

    /// The run's id of the backend called `name`; the first time a name is seen it gets the next id
    /// and a `backends` record.
    func backendID(for name: String) -> Int {
        let (id, isNew) = self.backendIDs.withLock { ids -> (Int, Bool) in
            if let id = ids[name] { return (id, false) }
            let id = ids.values.max().map { $0 + 1 } ?? 0
            ids[name] = id
            return (id, true)
        }
        if isNew {
            self.sink?.record(BackendRecord(id: id, name: name))
        }
        return id
    }

    /// Microseconds from the run's start to `nanos`.
    func micros(_ nanos: UInt64) -> Int64 {
        (Int64(bitPattern: nanos) - Int64(bitPattern: self.recordOriginNanos)) / 1_000
    }
}
