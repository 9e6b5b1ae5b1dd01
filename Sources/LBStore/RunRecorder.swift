import Dispatch
import Foundation
public import LBCore
import Synchronization

/// Takes the records of one run and writes them to the results file from a single writer thread
/// (DESIGN §5).
///
/// Producers (event loops of the proxy and the load generator, samplers) call the ``RecordSink``
/// methods, which append to a bounded in-memory buffer under a lock held for one append (or one chunk,
/// with `record(contentsOf:)`) and return: no producer ever waits on disk. The writer thread takes the
/// whole buffer once it holds ``batchRecords`` records or its oldest record has waited
/// ``commitIntervalMillis``, and writes it in one transaction with prepared statements. A batch is due
/// at 1,024 records (more only when the writer falls behind): while a run goes on, a batch of requests
/// is one packed row (below), so its cost is its encoding, and the writer's turns on a busy machine
/// stay short. A turn takes a
/// core from a producer or from what it measures: with up to 65,536 records a batch, each turn took
/// about 1.5 ms at the proxy's full rate, and the proxy's p99 with `-db` was 1.2× its p99 without.
/// The interval stays long: at a light load, a turn every 20 ms instead raised the load generator's
/// own p99 (bench/RESULTS.md). When the buffer is full (the disk cannot keep up), a record is
/// dropped and counted, and the count lands in `runs.dropped_records`.
///
/// While the run goes on, request records go in packed, one row of `staged_records` per batch
/// (``RecordChunk``): SQLite's work per row of `requests` (~0.8 µs) would otherwise take a tenth of a
/// core from the experiment at 100,000 requests a second. ``finish(status:durationMicros:)`` turns
/// the chunks into rows once nothing is measured any more; chunks of a process that died become rows
/// the next time the file is opened (``ResultsDatabase/open(path:)``).
///
/// ``finish(status:durationMicros:)`` drains what is buffered, then records how the run ended; it is
/// what Ctrl-C and SIGTERM handlers call, with ``RunStatus/interrupted``, so that every record taken
/// so far is kept.
public final class RunRecorder: RecordSink {
    /// The default bound of the buffer, in records: about a second of the proxy and the load generator
    /// both at full speed, a few hundred MB at most.
    public static let defaultBufferCapacity = 1_000_000
    /// The writer commits once this many records are waiting…
    static let batchRecords = 1_024
    /// …or once the oldest of them has waited this long, in milliseconds.
    static let commitIntervalMillis: UInt64 = 250
    /// The longest the writer sleeps between looks at the buffer when no one wakes it, in milliseconds:
    /// a record waits at most this much before its wait counts towards ``commitIntervalMillis``.
    static let idleCheckMillis: UInt64 = 50

    /// The run's id in the file.
    public let runID: Int64
    /// The run's globally unique id.
    public let uuid: String
    /// The file the records go to.
    public let database: ResultsDatabase

    /// Whether this recorder began the run and so records how it ended; a recorder attached to a run
    /// that another process owns (the proxy under `lbctl run`) only adds its dropped records.
    public let ownsRun: Bool

    private let capacity: Int
    private let state: Mutex<State>
    private let writerFinished = DispatchSemaphore(value: 0)
    /// Wakes the writer when a batch is full or the run is closing. Waking it only then (and every
    /// ``idleCheckMillis`` at most otherwise) keeps it from taking a core's turn from the producers
    /// hundreds of times a second on a busy machine, as polling every 2 ms did.
    private let writerWake = DispatchSemaphore(value: 0)

    private struct State: Sendable {
        var pending = PendingRecords()
        var dropped = 0
        var written = 0
        var closing = false
        var writerExited = false
        /// Whether the writer was woken for a full batch it has not taken yet.
        var writerWoken = false
        var firstWriteError: String?
        var outcome: FinishedRun?
    }

    init(database: ResultsDatabase, runID: Int64, uuid: String, bufferCapacity: Int, ownsRun: Bool = true) {
        precondition(bufferCapacity > 0, "the record buffer needs room for at least one record")
        self.ownsRun = ownsRun
        self.database = database
        self.runID = runID
        self.uuid = uuid
        self.capacity = bufferCapacity
        self.state = Mutex(State())
        let writer = Thread { [self] in self.runWriter() }
        writer.start()
    }

    // MARK: RecordSink

    public func record(_ request: RequestRecord) {
        self.append { $0.requests.append(request) }
    }

    public func record(_ request: ProxyRequestRecord) {
        self.append { $0.proxyRequests.append(request) }
    }

    public func record(_ sample: ResourceSample) {
        self.append { $0.samples.append(sample) }
    }

    public func record(_ event: RunEvent) {
        self.append { $0.events.append(event) }
    }

    public func record(_ backend: BackendRecord) {
        self.append { $0.backends.append(backend) }
    }

    public func record(contentsOf requests: [RequestRecord]) {
        self.append(requests, to: \.requests)
    }

    public func record(contentsOf requests: [ProxyRequestRecord]) {
        self.append(requests, to: \.proxyRequests)
    }

    /// Writes `backends` now, past the buffer, so that another process recording into the same run (the
    /// proxy under `lbctl run`) finds their ids when it starts.
    public func recordNow(_ backends: [BackendRecord]) throws(StoreError) {
        var batch = PendingRecords()
        batch.backends = backends
        do {
            _ = try self.database.dbWriter.write { db in try BatchWriter(runID: self.runID).write(batch, to: db) }
        } catch {
            throw .sqlite(path: self.database.path, message: "could not record the backends of run \(self.runID): \(error)")
        }
    }

    /// Appends as many of `records` as there is room for and counts the rest as dropped.
    private func append<Record>(_ records: [Record], to buffer: WritableKeyPath<PendingRecords, [Record]>) {
        let wake = self.state.withLock { state in
            let room = state.writerExited ? 0 : max(0, self.capacity - state.pending.count)
            let taken = min(room, records.count)
            if taken == records.count {
                state.pending[keyPath: buffer].append(contentsOf: records)
            } else {
                state.pending[keyPath: buffer].append(contentsOf: records.prefix(taken))
            }
            state.pending.count += taken
            state.dropped += records.count - taken
            return Self.batchFilled(&state)
        }
        if wake { self.writerWake.signal() }
    }

    /// Whether the buffer just reached a batch and the writer is to be woken for it.
    @inline(__always)
    private static func batchFilled(_ state: inout State) -> Bool {
        guard state.pending.count >= Self.batchRecords, !state.writerWoken else { return false }
        state.writerWoken = true
        return true
    }

    @inline(__always)
    private func append(_ body: (inout PendingRecords) -> Void) {
        let wake = self.state.withLock { state in
            guard state.pending.count < self.capacity, !state.writerExited else {
                state.dropped += 1
                return false
            }
            body(&state.pending)
            state.pending.count += 1
            return Self.batchFilled(&state)
        }
        if wake { self.writerWake.signal() }
    }

    /// Waits, a millisecond at a time, until the buffer has room for `count` more records and a margin
    /// for the samples and events in between (or the writer has stopped), waking the writer for what is
    /// there: the simulator's records then all reach the file, at the rate the file takes them.
    public func waitForRoom(_ count: Int) {
        let limit = self.capacity - min(self.capacity / 2, 65_536)
        while true {
            let full = self.state.withLock { state in
                !state.writerExited && state.pending.count + count > limit
            }
            guard full else { return }
            self.writerWake.signal()
            usleep(1_000)
        }
    }

    /// Records dropped so far because the buffer was full.
    public var droppedRecords: Int {
        self.state.withLock { $0.dropped }
    }

    // MARK: Finishing

    /// What ``finish(status:durationMicros:)`` wrote.
    public struct FinishedRun: Sendable, Hashable {
        /// How the run ended, as recorded.
        public var status: RunStatus
        /// Records written to the file.
        public var written: Int
        /// Records dropped because the buffer was full or a write failed.
        public var dropped: Int
    }

    /// Stops taking records, writes everything buffered, records the run's end (`status`, its length,
    /// and the count of dropped records) and checkpoints the WAL into the file. Calling it again returns
    /// the first outcome.
    ///
    /// Throws when a batch could not be written (the run is then marked `failed`, and the batch's records
    /// are counted as dropped) or when the `runs` row cannot be updated.
    @discardableResult
    public func finish(status: RunStatus, durationMicros: Int64?) throws(StoreError) -> FinishedRun {
        let alreadyClosing = self.state.withLock { state in
            defer { state.closing = true }
            return state.closing
        }
        self.writerWake.signal()
        self.writerFinished.wait()
        self.writerFinished.signal()  // let any concurrent or later call through as well
        if alreadyClosing, let outcome = self.state.withLock({ $0.outcome }) {
            return outcome
        }
        if self.ownsRun {
            // Another process that recorded into this run and was killed (the proxy under `lbctl run`, past
            // its grace) left its chunks staged: they become rows now rather than at the file's next open.
            _ = try? ResultsDatabase.recoverStagedRecords(self.database.dbWriter, path: self.database.path)
        }
        let (written, dropped, writeError) = self.state.withLock { ($0.written, $0.dropped, $0.firstWriteError) }
        let finalStatus = writeError == nil ? status : .failed
        do {
            try self.database.dbWriter.write { db in
                if self.ownsRun {
                    try db.execute(
                        sql: "UPDATE runs SET status = ?, duration_us = ?, dropped_records = dropped_records + ? WHERE id = ?",
                        arguments: [finalStatus.rawValue, durationMicros, dropped, self.runID]
                    )
                } else if dropped > 0 || writeError != nil {
                    try db.execute(
                        sql: "UPDATE runs SET dropped_records = dropped_records + ?" + (writeError != nil ? ", status = 'failed'" : "") + " WHERE id = ?",
                        arguments: [dropped, self.runID]
                    )
                }
            }
        } catch {
            throw .sqlite(path: self.database.path, message: "could not record the end of run \(self.runID): \(error)")
        }
        // The run's WAL frames go into the file now that nothing competes with the work; a recorder
        // attached to another process's run leaves that to the owner, whose writer is still busy (a
        // truncating checkpoint would wait for it).
        if self.ownsRun { self.database.checkpoint() }
        let outcome = FinishedRun(status: finalStatus, written: written, dropped: dropped)
        self.state.withLock { $0.outcome = outcome }
        if let writeError {
            throw .sqlite(path: self.database.path, message: "records of run \(self.runID) were lost: \(writeError)")
        }
        return outcome
    }

    // MARK: The writer thread

    private func runWriter() {
        Self.nameThread("lblab-writer")
        let writer = BatchWriter(runID: self.runID)
        let process = StagingProcess.current.name
        var stagedChunks: [Int64] = []
        var waitingSince: UInt64?  // when the writer first saw records waiting, in uptime nanoseconds
        // The writer's batch and the producers' buffer trade places under the lock; once written, the
        // batch is emptied, keeping its storage, and becomes the producers' buffer at the next trade. The
        // same two sets of buffers serve the whole run, so the writer never allocates or frees megabytes
        // while the producers run (which would take the process's memory-map lock and interrupt them
        // with TLB shootdowns).
        var batch = PendingRecords()
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            let (taken, closing, waiting) = self.state.withLock { state -> (Bool, Bool, Int) in
                let overdue = waitingSince.map { now - $0 >= Self.commitIntervalMillis * 1_000_000 } ?? false
                let due = state.closing || overdue || state.pending.count >= Self.batchRecords
                let waiting = state.pending.count
                guard due, waiting > 0 else { return (false, state.closing, waiting) }
                swap(&state.pending, &batch)
                state.writerWoken = false
                return (true, state.closing, waiting)
            }
            if closing, !stagedChunks.isEmpty {
                // The end: the chunks become rows first, so that rows stay in the order they were taken.
                self.unstage(&stagedChunks)
            }
            if !taken {
                if closing { break }
                if waiting > 0, waitingSince == nil { waitingSince = now }
                // Sleep until woken (a full batch, the end) or the oldest record is due, checking at
                // least every idleCheckMillis.
                var sleepNanos = Self.idleCheckMillis * 1_000_000
                if let since = waitingSince {
                    let due = since + Self.commitIntervalMillis * 1_000_000
                    sleepNanos = min(sleepNanos, due > now ? due - now : 0)
                }
                _ = self.writerWake.wait(timeout: .now() + .nanoseconds(Int(sleepNanos)))
                continue
            }
            waitingSince = nil
            do {
                stagedChunks += try self.database.dbWriter.write { db in
                    try writer.write(batch, to: db, stagingAs: closing ? nil : process)
                }
                self.state.withLock { $0.written += batch.count }
            } catch {
                self.state.withLock { state in
                    state.dropped += batch.count
                    if state.firstWriteError == nil { state.firstWriteError = "\(error)" }
                }
            }
            batch.removeAll()
        }
        self.state.withLock { $0.writerExited = true }
        self.writerFinished.signal()
    }
}

extension RunRecorder {
    /// Turns this recorder's chunks into rows, one transaction each. A chunk that fails stays staged
    /// (the next process to open the file turns it into rows) and the run is marked failed.
    private func unstage(_ chunks: inout [Int64]) {
        ResultsDatabase.unstage(chunks, self.database.dbWriter) { _, error in
            self.state.withLock { state in
                if state.firstWriteError == nil { state.firstWriteError = "staged records not turned into rows: \(error)" }
            }
        }
        chunks.removeAll()
    }

    /// Names the calling thread, as top, perf and `/proc` show it. Foundation's `Thread.name` does not
    /// reach the system's thread name on Linux.
    static func nameThread(_ name: String) {
        #if os(Linux)
        try? Data(name.utf8).write(to: URL(fileURLWithPath: "/proc/thread-self/comm"))
        #endif
    }
}

/// The records waiting for the writer, by table.
struct PendingRecords: Sendable {
    var requests: [RequestRecord] = []
    var proxyRequests: [ProxyRequestRecord] = []
    var samples: [ResourceSample] = []
    var events: [RunEvent] = []
    var backends: [BackendRecord] = []
    /// Records of every kind.
    var count = 0

    /// Empties every buffer and keeps its storage.
    mutating func removeAll() {
        self.requests.removeAll(keepingCapacity: true)
        self.proxyRequests.removeAll(keepingCapacity: true)
        self.samples.removeAll(keepingCapacity: true)
        self.events.removeAll(keepingCapacity: true)
        self.backends.removeAll(keepingCapacity: true)
        self.count = 0
    }
}

