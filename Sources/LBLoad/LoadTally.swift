import LBCore
import NIOCore

/// What a worker keeps of its requests: the statistics of those due after the warm-up, and a record of
/// every one for the run's sink, handed over in chunks of ``recordChunk`` (and at every timeout
/// sweep, and when the worker finishes), so that the sink's lock is taken once per chunk.
struct LoadTally {
    private let context: LoadRunContext
    /// Every client's synthetic address, by client number.
    let clientIPs: [String]
    private let warmupEndNanos: UInt64
    private let endNanos: UInt64?
    /// Request body bytes, the same for every request.
    private let bytesOut: Int64

    /// Statistics of the requests due after the warm-up.
    var statistics = LoadStatistics()
    private var unsentRecords: [RequestRecord] = []
    /// The run's backend ids this worker has seen, by name.
    private var backendIDs: [String: Int] = [:]
    static let recordChunk = 256

    init(configuration: LoadConfiguration, context: LoadRunContext, bytesOut: Int) {
        self.context = context
        self.clientIPs = (0..<configuration.clients).map(ClientAddresses.address(of:))
        self.warmupEndNanos = context.t0Nanos + UInt64(max(0, configuration.warmup.nanoseconds))
        self.endNanos = configuration.duration.map { context.t0Nanos + UInt64(max(0, $0.nanoseconds)) }
        self.bytesOut = Int64(bytesOut)
    }

    /// Whether `request` counts in the statistics (it was due after the warm-up).
    func counts(_ request: LoadRequest) -> Bool {
        request.intendedNanos >= self.warmupEndNanos
    }

    /// Counts `request`, sent at `sent`.
    mutating func sent(_ request: LoadRequest, at sent: UInt64) {
        guard self.counts(request) else { return }
        self.statistics.recordSend(
            lagMicros: Int64(sent &- min(sent, request.intendedNanos)) / 1_000,
            inWindow: sent <= self.endNanos ?? .max
        )
    }

    /// Counts and records a request that ended (sent or not), as `outcome` tells.
    mutating func end(_ outcome: LoadConnectionHandler.Outcome) {
        let (request, sentNanos, done) = (outcome.request, outcome.sentNanos, outcome.doneNanos)
        let backendID = outcome.backend.map { self.backendID(for: $0) }
        if self.counts(request) {
            self.statistics.record(
                correctedMicros: Int64(done &- request.intendedNanos) / 1_000,
                serviceMicros: Int64(done &- min(sentNanos, done)) / 1_000,
                status: outcome.status,
                error: outcome.error,
                backend: outcome.backend,
                bytes: outcome.bytesIn
            )
        }
        guard self.context.records else { return }
        self.unsentRecords.append(
            RequestRecord(
                id: request.id,
                clientID: Int32(request.client),
                clientIP: self.clientIPs[request.client],
                intendedMicros: self.context.micros(request.intendedNanos),
                sentMicros: self.context.micros(sentNanos),
                firstByteMicros: outcome.firstByteNanos.map(self.context.micros),
                doneMicros: self.context.micros(done),
                status: outcome.status,
                backendID: backendID,
                attempts: 1,
                bytesIn: outcome.bytesIn,
                bytesOut: self.bytesOut,
                error: outcome.error,
                key: request.key
            )
        )
        if self.unsentRecords.count >= Self.recordChunk {
            self.handOverRecords()
        }
    }

    /// Counts and records a request that ended at `now` without going out, with `error`.
    mutating func endUnsent(_ request: LoadRequest, at now: UInt64, error: RequestFailure) {
        self.end(.init(request: request, sentNanos: now, doneNanos: now, bytesIn: 0, error: error, reusable: false))
    }

    /// The run's id of the backend called `name`, asked of the run's context (under its lock, shared by
    /// every worker) only the first time this worker sees the name.
    private mutating func backendID(for name: String) -> Int {
        if let id = self.backendIDs[name] { return id }
        let id = self.context.backendID(for: name)
        self.backendIDs[name] = id
        return id
    }

    /// Hands the records gathered so far to the sink.
    mutating func handOverRecords() {
        guard !self.unsentRecords.isEmpty, let sink = self.context.sink else { return }
        sink.record(contentsOf: self.unsentRecords)
        self.unsentRecords.removeAll(keepingCapacity: true)
    }
}
