import DequeModule
import LBCore
import NIOCore
import NIOPosix

/// The load of one event loop: its share of the clients (open loop) or of the connections (closed
/// loop), their connection pool, and their statistics. Every method runs on ``eventLoop``.
///
/// Open loop: the schedule fixes when each request is due; a timer fires at the next due time and
/// hands every due request to an idle connection, or opens a new one while the pool is under its
/// limit, or queues the request (and counts that it waited). Latency counts from the due time, so a
/// slow target shows in the figures instead of silently slowing the load.
final class LoadWorker {
    let eventLoop: any EventLoop
    private let configuration: LoadConfiguration
    private let context: LoadRunContext
    private let clientIPs: [String]
    private let template: RequestTemplate
    private let maxConnections: Int
    private let warmupEndNanos: UInt64
    private let endNanos: UInt64?

    private var schedule: ArrivalSchedule?
    private var scheduleTimer: Scheduled<Void>?
    private var scheduleDone = false
    /// Closed loop: requests this worker may still start (`nil`: bounded by time only).
    private var closedLoopBudget: Int?
    private var keyGenerator: SeededGenerator

    private var connections: [ObjectIdentifier: Connection] = [:]
    /// Open connections with nothing on the wire, the most recently used last.
    private var idle: [LoadConnectionHandler] = []
    private var connecting = 0
    private var waiting = Deque<LoadRequest>()
    private var inFlight = 0
    private var stopped = false
    private let finished: EventLoopPromise<Void>
    private var openedConnections = 0
    private var isFinished = false

    /// Records not yet handed to the sink: they go over in chunks of ``recordChunk`` (and at every
    /// timeout sweep, and when the worker finishes), so the sink's lock is taken once per chunk.
    private var unsentRecords: [RequestRecord] = []
    /// The run's backend ids this worker has seen, by name.
    private var backendIDs: [String: Int] = [:]
    private static let recordChunk = 256

    /// Statistics of the requests due after the warm-up.
    private(set) var statistics = LoadStatistics()
    /// The first connection error, to report when nothing could be sent.
    private(set) var firstConnectError: String?

    private struct Connection {
        let channel: any Channel
        let handler: LoadConnectionHandler
        var id: ObjectIdentifier { ObjectIdentifier(self.handler) }
    }

    /// A worker on `eventLoop` for `clients` (open loop) or `connections` connections (closed loop).
    init(
        eventLoop: any EventLoop,
        index: Int,
        clients: [Int],
        connections: Int,
        requestBudget: Int?,
        configuration: LoadConfiguration,
        context: LoadRunContext
    ) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.context = context
        self.clientIPs = (0..<configuration.clients).map(ClientAddresses.address(of:))
        self.template = RequestTemplate(configuration: configuration)
        self.maxConnections = max(1, connections)
        self.warmupEndNanos = context.t0Nanos + UInt64(max(0, configuration.warmup.nanoseconds))
        self.endNanos = configuration.duration.map { context.t0Nanos + UInt64(max(0, $0.nanoseconds)) }
        self.keyGenerator = SeededGenerator.derived(seed: configuration.seed, stream: 0x6B65_7973 &+ UInt64(index))
        self.finished = eventLoop.makePromise()
        switch configuration.pacing {
        case .openLoop(let rate, let arrival):
            self.schedule = ArrivalSchedule(
                clients: clients,
                ratePerClient: rate,
                process: arrival,
                duration: configuration.duration,
                limit: requestBudget,
                seed: configuration.seed
            )
        case .closedLoop:
            self.closedLoopBudget = requestBudget
        }
    }

    /// Completes when every request of this worker has ended.
    var finishedFuture: EventLoopFuture<Void> { self.finished.futureResult }

    // MARK: Starting and stopping

    func start() {
        self.eventLoop.preconditionInEventLoop()
        self.sweepTimeouts()
        if self.schedule != nil {
            self.armSchedule()
        } else {
            // Closed loop: from t0 on, every connection sends as soon as it is open, and again after each
            // response.
            self.scheduleTimer = self.eventLoop.assumeIsolated().scheduleTask(
                deadline: .uptimeNanoseconds(self.context.t0Nanos)
            ) {
                self.scheduleTimer = nil
                guard !self.stopped else { return }
                for _ in 0..<self.maxConnections {
                    self.openConnection()
                }
            }
        }
    }

    /// Stops sending; requests waiting or in flight end as `interrupted`.
    func stop() {
        self.eventLoop.preconditionInEventLoop()
        guard !self.stopped else { return }
        self.stopped = true
        self.scheduleTimer?.cancel()
        self.scheduleTimer = nil
        let now = NIODeadline.now().uptimeNanoseconds
        while let request = self.waiting.popFirst() {
            self.end(request, sentNanos: now, outcome: .init(request: request, sentNanos: now, doneNanos: now, bytesIn: 0, error: .interrupted, reusable: false))
        }
        for connection in self.connections.values where connection.handler.isBusy {
            connection.handler.fail(.interrupted)
        }
        self.checkFinished()
    }

    // MARK: Open loop

    private func armSchedule() {
        guard !self.stopped else { return }
        guard let due = self.schedule?.nextDueNanos else {
            self.scheduleDone = true
            self.checkFinished()
            return
        }
        let deadline = NIODeadline.uptimeNanoseconds(self.context.t0Nanos + UInt64(due))
        self.scheduleTimer = self.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.scheduleTimer = nil
            self.fireDue()
        }
    }

    /// Sends every request due by now (more than one when the loop was late: none is skipped).
    private func fireDue() {
        let now = NIODeadline.now().uptimeNanoseconds
        while !self.stopped, let due = self.schedule?.nextDueNanos, self.context.t0Nanos + UInt64(due) <= now {
            let arrival = self.schedule!.next()!
            self.dispatch(
                LoadRequest(
                    id: self.context.newRequestID(),
                    client: arrival.client,
                    intendedNanos: self.context.t0Nanos + UInt64(arrival.dueNanos)
                )
            )
        }
        self.armSchedule()
    }

    private func dispatch(_ request: LoadRequest) {
        while let handler = self.idle.popLast() {
            if !handler.isBroken {
                self.send(request, on: handler)
                return
            }
        }
        if self.connections.count + self.connecting >= self.maxConnections {
            self.statistics.waitedForConnection += request.intendedNanos >= self.warmupEndNanos ? 1 : 0
        }
        self.waiting.append(request)
        self.openConnectionsForWaiting()
    }

    /// Connections opened at once, at most: enough to grow the pool quickly, few enough that a burst
    /// of requests at the start does not become a storm of connects that overflows the target's
    /// accept queue (whose dropped SYNs come back only after the kernel's 1 s retransmission timeout,
    /// which is what an unbounded open-loop start measured at 10,000 req/s).
    static let maxConcurrentConnects = 16

    /// Opens connections for requests waiting, while the pool and the connect limit allow.
    private func openConnectionsForWaiting() {
        while self.connecting < min(self.waiting.count, Self.maxConcurrentConnects),
            self.connections.count + self.connecting < self.maxConnections
        {
            self.openConnection()
        }
    }

    // MARK: Connections

    private func openConnection() {
        self.connecting += 1
        let client = self.openedConnections % self.configuration.clients
        self.openedConnections += 1
        let handler = LoadConnectionHandler(client: client) { outcome, handler in
            self.requestEnded(outcome, on: handler)
        }
        let bound = NIOLoopBound(handler, eventLoop: self.eventLoop)
        ClientBootstrap(group: self.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.nanoseconds(min(self.configuration.timeout.nanoseconds, 10_000_000_000)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .connect(host: self.configuration.target.host, port: self.configuration.target.port)
            .assumeIsolated()
            .whenComplete { result in
                self.connecting -= 1
                switch result {
                case .success(let channel):
                    self.connected(Connection(channel: channel, handler: handler))
                case .failure(let error):
                    self.connectFailed(error)
                }
            }
    }

    private func connected(_ connection: Connection) {
        self.connections[connection.id] = connection
        self.statistics.peakConnections = max(self.statistics.peakConnections, self.connections.count)
        connection.channel.closeFuture.assumeIsolated().whenComplete { _ in
            self.connections[connection.id] = nil
            self.idle.removeAll { $0 === connection.handler }
            self.replaceLostConnection()
        }
        self.connectionAvailable(connection.handler, now: NIODeadline.now().uptimeNanoseconds)
    }

    private func connectFailed(_ error: any Error) {
        if self.firstConnectError == nil {
            self.firstConnectError = LoadRun.describe(error)
        }
        let now = NIODeadline.now().uptimeNanoseconds
        if self.schedule != nil, let request = self.waiting.popFirst() {
            self.end(request, sentNanos: now, outcome: .init(request: request, sentNanos: now, doneNanos: now, bytesIn: 0, error: .connectFailed, reusable: false))
            self.replaceLostConnection()
        } else if self.schedule == nil, self.mayStartClosedLoopRequest(now: now) {
            // Closed loop: count the failed attempt as a request, then try again after a pause.
            if let budget = self.closedLoopBudget { self.closedLoopBudget = budget - 1 }
            let request = LoadRequest(id: self.context.newRequestID(), client: 0, intendedNanos: now)
            self.end(request, sentNanos: now, outcome: .init(request: request, sentNanos: now, doneNanos: now, bytesIn: 0, error: .connectFailed, reusable: false))
            self.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(10)) { self.openConnection() }
        }
        self.checkFinished()
    }

    /// Opens another connection when requests wait and the pool has room (after a close or a failure).
    private func replaceLostConnection() {
        guard !self.stopped else {
            self.checkFinished()
            return
        }
        if self.schedule != nil {
            self.openConnectionsForWaiting()
        } else if self.connections.count + self.connecting < self.maxConnections,
            self.mayStartClosedLoopRequest(now: NIODeadline.now().uptimeNanoseconds)
        {
            self.openConnection()
        }
        self.checkFinished()
    }

    /// The connection of `handler` can take a request at `now`.
    private func connectionAvailable(_ handler: LoadConnectionHandler, now: UInt64) {
        guard !handler.isBroken else {
            self.checkFinished()
            return
        }
        if self.schedule != nil, !self.stopped, let request = self.waiting.popFirst() {
            self.send(request, on: handler)
            self.openConnectionsForWaiting()
        } else if self.schedule == nil, self.mayStartClosedLoopRequest(now: now) {
            if let budget = self.closedLoopBudget { self.closedLoopBudget = budget - 1 }
            self.send(
                LoadRequest(id: self.context.newRequestID(), client: handler.client, intendedNanos: now),
                on: handler
            )
        } else {
            self.idle.append(handler)
            self.checkFinished()
        }
    }

    private func mayStartClosedLoopRequest(now: UInt64) -> Bool {
        guard !self.stopped else { return false }
        if let budget = self.closedLoopBudget, budget <= 0 { return false }
        if let end = self.endNanos, now >= end { return false }
        return true
    }

    // MARK: Requests

    private func send(_ request: LoadRequest, on handler: LoadConnectionHandler) {
        var request = request
        request.key = self.configuration.keys.map { $0.next(using: &self.keyGenerator) }
        let sent = NIODeadline.now().uptimeNanoseconds
        let isSent = handler.send(
            request,
            sentNanos: sent,
            isHEAD: self.template.isHEAD,
            timeoutNanos: UInt64(self.configuration.timeout.nanoseconds)
        ) { buffer in
            self.template.write(id: request.id, clientIP: self.clientIPs[request.client], key: request.key, into: &buffer)
        }
        guard isSent else {
            // The connection closed while idle: the request goes first in line for another one (closed
            // loop: it was never sent, and another connection takes its turn).
            if self.schedule != nil {
                self.waiting.prepend(request)
            } else if let budget = self.closedLoopBudget {
                self.closedLoopBudget = budget + 1
            }
            self.replaceLostConnection()
            return
        }
        self.inFlight += 1
        if request.intendedNanos >= self.warmupEndNanos {
            self.statistics.recordSend(
                lagMicros: Int64(sent &- min(sent, request.intendedNanos)) / 1_000,
                inWindow: sent <= self.endNanos ?? .max
            )
        }
    }

    /// Times out overdue requests. One sweep over the connections every tenth of the timeout (between
    /// 1 ms and 100 ms) replaces a timer per request, which cost more than the request in a closed loop:
    /// a request times out between 1 and 1.1 timeouts after it was sent.
    private func sweepTimeouts() {
        guard !self.isFinished else { return }
        self.handOverRecords()
        let now = NIODeadline.now().uptimeNanoseconds
        for connection in self.connections.values where connection.handler.isBusy {
            connection.handler.expireIfOverdue(now: now)
        }
        let period = min(max(self.configuration.timeout.nanoseconds / 10, 1_000_000), 100_000_000)
        self.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(period)) {
            self.sweepTimeouts()
        }
    }

    /// A request sent on `handler`'s connection ended. A connection that closed meanwhile is broken,
    /// which ``connectionAvailable(_:now:)`` checks.
    private func requestEnded(_ outcome: LoadConnectionHandler.Outcome, on handler: LoadConnectionHandler) {
        self.inFlight -= 1
        self.end(outcome.request, sentNanos: outcome.sentNanos, outcome: outcome)
        if outcome.reusable {
            self.connectionAvailable(handler, now: outcome.doneNanos)
        }
    }

    /// The run's id of the backend called `name`, asked of the run's context (under its lock, shared by
    /// every worker) only the first time this worker sees the name.
    private func backendID(for name: String) -> Int {
        if let id = self.backendIDs[name] { return id }
        let id = self.context.backendID(for: name)
        self.backendIDs[name] = id
        return id
    }

    /// Records a request that ended (sent or not).
    private func end(_ request: LoadRequest, sentNanos: UInt64, outcome: LoadConnectionHandler.Outcome) {
        let done = outcome.doneNanos
        let backendID = outcome.backend.map(self.backendID(for:))
        if request.intendedNanos >= self.warmupEndNanos {
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
                bytesOut: Int64(self.template.bodyCount),
                error: outcome.error,
                key: request.key
            )
        )
        if self.unsentRecords.count >= Self.recordChunk {
            self.handOverRecords()
        }
    }

    /// Hands the records gathered so far to the sink.
    private func handOverRecords() {
        guard !self.unsentRecords.isEmpty, let sink = self.context.sink else { return }
        sink.record(contentsOf: self.unsentRecords)
        self.unsentRecords.removeAll(keepingCapacity: true)
    }

    /// Completes ``finishedFuture`` once nothing more will be sent and nothing is in flight or waiting.
    private func checkFinished() {
        let noMoreWork: Bool
        if self.schedule != nil {
            noMoreWork = self.stopped || self.scheduleDone
        } else {
            noMoreWork = !self.mayStartClosedLoopRequest(now: NIODeadline.now().uptimeNanoseconds)
        }
        guard !self.isFinished, noMoreWork, self.inFlight == 0, self.waiting.isEmpty, self.connecting == 0 else { return }
        self.isFinished = true
        self.handOverRecords()
        for connection in self.connections.values {
            connection.channel.close(promise: nil)
        }
        self.idle.removeAll()
        self.finished.succeed(())
    }
}

@available(*, unavailable)
extension LoadWorker: Sendable {}

/// A request of the load: its number, its client and when it was due.
struct LoadRequest {
    var id: Int64
    var client: Int
    var intendedNanos: UInt64
    /// The key it carries, drawn when it is sent.
    var key: Int? = nil
}
