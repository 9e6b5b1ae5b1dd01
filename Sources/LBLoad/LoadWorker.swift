import DequeModule
import LBCore
import NIOCore
import NIOPosix

/// What ``LoadRun`` asks of the load of one event loop, HTTP (``LoadWorker``) or WebSocket
/// (``WebSocketLoadWorker``). Every member is used on ``eventLoop``.
protocol LoadWorking: AnyObject {
    /// A worker on `eventLoop`, the `index`th of the run's, for `clients` (open loop) or `connections`
    /// connections (closed loop), sending at most `requestBudget` requests if given.
    init(
        eventLoop: any EventLoop,
        index: Int,
        clients: [Int],
        connections: Int,
        requestBudget: Int?,
        configuration: LoadConfiguration,
        context: LoadRunContext
    )
    var eventLoop: any EventLoop { get }
    /// Starts sending at the run's t0.
    func start()
    /// Stops sending; requests waiting or in flight end as `interrupted`.
    func stop()
    /// Completes when every request of the worker has ended.
    var finishedFuture: EventLoopFuture<Void> { get }
    /// Statistics of the requests due after the warm-up.
    var statistics: LoadStatistics { get }
    /// The first connection error, to report when nothing could be sent.
    var firstConnectError: String? { get }
}

/// The load of one event loop: its share of the clients (open loop) or of the connections (closed
/// loop), their connection pool, and their statistics. Every method runs on ``eventLoop``. On Linux
/// a closed loop runs on ``ClosedLoopEngine`` instead (``LoadRun/usesClosedLoopEngine(_:)``).
///
/// Open loop: the schedule fixes when each request is due; a timer fires at the next due time and
/// hands every due request to an idle connection, or opens a new one while the pool is under its
/// limit, or queues the request (and counts that it waited). Latency counts from the due time, so a
/// slow target shows in the figures instead of silently slowing the load.
final class LoadWorker: LoadWorking {
    let eventLoop: any EventLoop
    private let configuration: LoadConfiguration
    private let context: LoadRunContext
    private let template: RequestTemplate
    private let maxConnections: Int
    /// Closed loop: the clients its connections send for, one after another.
    private let clients: [Int]
    private var pace: LoadPace
    private var keyGenerator: SeededGenerator

    private var connections: [ObjectIdentifier: Connection] = [:]
    /// Open connections with nothing on the wire, the most recently used last.
    private var idle: [LoadConnectionHandler] = []
    private var connecting = 0
    private var waiting = Deque<LoadRequest>()
    private var inFlight = 0
    private let finished: EventLoopPromise<Void>
    private var openedConnections = 0
    private var isFinished = false

    /// Statistics and records of the requests that ended.
    private var tally: LoadTally
    var statistics: LoadStatistics { self.tally.statistics }
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
        self.template = RequestTemplate(configuration: configuration)
        self.tally = LoadTally(configuration: configuration, context: context, bytesOut: self.template.bodyCount)
        self.maxConnections = max(1, connections)
        self.clients = LoadRun.closedLoopClients(clients, index: index, configuration)
        self.pace = LoadPace(configuration: configuration, clients: clients, requestBudget: requestBudget, t0Nanos: context.t0Nanos)
        self.keyGenerator = SeededGenerator.derived(seed: configuration.seed, stream: 0x6B65_7973 &+ UInt64(index))
        self.finished = eventLoop.makePromise()
    }

    /// Completes when every request of this worker has ended.
    var finishedFuture: EventLoopFuture<Void> { self.finished.futureResult }

    // MARK: Starting and stopping

    func start() {
        self.eventLoop.preconditionInEventLoop()
        self.sweepTimeouts()
        if self.pace.isOpenLoop {
            self.armSchedule()
        } else {
            // Closed loop: from t0 on, every connection sends as soon as it is open, and again after each
            // response.
            self.pace.fire(at: self.context.t0Nanos, on: self.eventLoop) {
                for _ in 0..<self.maxConnections {
                    self.openConnection()
                }
            }
        }
    }

    /// Stops sending; requests waiting or in flight end as `interrupted`.
    func stop() {
        self.eventLoop.preconditionInEventLoop()
        guard !self.pace.stopped else { return }
        self.pace.stop()
        let now = NIODeadline.now().uptimeNanoseconds
        while let request = self.waiting.popFirst() {
            self.tally.endUnsent(request, at: now, error: .interrupted)
        }
        for connection in self.connections.values where connection.handler.isBusy {
            connection.handler.fail(.interrupted)
        }
        self.checkFinished()
    }

    // MARK: Open loop

    private func armSchedule() {
        if !self.pace.armNextDue(on: self.eventLoop, { self.fireDue() }) {
            self.checkFinished()
        }
    }

    /// Sends every request due by now (more than one when the loop was late: none is skipped).
    private func fireDue() {
        let now = NIODeadline.now().uptimeNanoseconds
        while let (client, due) = self.pace.nextDue(by: now) {
            self.dispatch(LoadRequest(id: self.context.newRequestID(), client: client, intendedNanos: due))
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
            self.tally.statistics.waitedForConnection += self.tally.counts(request) ? 1 : 0
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
        let client = self.clients[self.openedConnections % self.clients.count]
        self.openedConnections += 1
        let handler = LoadConnectionHandler(client: client) { outcome, handler in
            self.requestEnded(outcome, on: handler)
        }
        let bound = NIOLoopBound(handler, eventLoop: self.eventLoop)
        ClientBootstrap(group: self.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(LoadPace.connectTimeout(self.configuration.timeout))
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
        self.tally.statistics.peakConnections = max(self.tally.statistics.peakConnections, self.connections.count)
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
        if self.pace.isOpenLoop, let request = self.waiting.popFirst() {
            self.tally.endUnsent(request, at: now, error: .connectFailed)
            self.replaceLostConnection()
        } else if !self.pace.isOpenLoop, self.pace.takeClosedLoopTurn(now: now) {
            // Closed loop: count the failed attempt as a request, then try again after a pause.
            let request = LoadRequest(id: self.context.newRequestID(), client: 0, intendedNanos: now)
            self.tally.endUnsent(request, at: now, error: .connectFailed)
            self.eventLoop.assumeIsolated().scheduleTask(in: LoadPace.connectRetryPause) { self.openConnection() }
        }
        self.checkFinished()
    }

    /// Opens another connection when requests wait and the pool has room (after a close or a failure).
    private func replaceLostConnection() {
        guard !self.pace.stopped else {
            self.checkFinished()
            return
        }
        if self.pace.isOpenLoop {
            self.openConnectionsForWaiting()
        } else if self.connections.count + self.connecting < self.maxConnections,
            self.pace.mayStartClosedLoop(now: NIODeadline.now().uptimeNanoseconds)
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
        if self.pace.isOpenLoop, !self.pace.stopped, let request = self.waiting.popFirst() {
            self.send(request, on: handler)
            self.openConnectionsForWaiting()
        } else if !self.pace.isOpenLoop, self.pace.takeClosedLoopTurn(now: now) {
            self.send(
                LoadRequest(id: self.context.newRequestID(), client: handler.client, intendedNanos: now),
                on: handler
            )
        } else {
            self.idle.append(handler)
            self.checkFinished()
        }
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
            self.template.write(id: request.id, clientIP: self.tally.clientIPs[request.client], key: request.key, into: &buffer)
        }
        guard isSent else {
            // The connection closed while idle: the request goes first in line for another one (closed
            // loop: it was never sent, and another connection takes its turn).
            if self.pace.isOpenLoop {
                self.waiting.prepend(request)
            } else {
                self.pace.giveBackClosedLoopTurn()
            }
            self.replaceLostConnection()
            return
        }
        self.inFlight += 1
        self.tally.sent(request, at: sent)
    }

    /// Times out overdue requests, a sweep over the connections every ``LoadPace/sweepPeriod(timeout:)``.
    private func sweepTimeouts() {
        guard !self.isFinished else { return }
        self.tally.handOverRecords()
        let now = NIODeadline.now().uptimeNanoseconds
        for connection in self.connections.values where connection.handler.isBusy {
            connection.handler.expireIfOverdue(now: now)
        }
        self.eventLoop.assumeIsolated().scheduleTask(in: LoadPace.sweepPeriod(timeout: self.configuration.timeout)) {
            self.sweepTimeouts()
        }
    }

    /// A request sent on `handler`'s connection ended. A connection that closed meanwhile is broken,
    /// which ``connectionAvailable(_:now:)`` checks.
    private func requestEnded(_ outcome: LoadConnectionHandler.Outcome, on handler: LoadConnectionHandler) {
        self.inFlight -= 1
        self.tally.end(outcome)
        if outcome.reusable {
            self.connectionAvailable(handler, now: outcome.doneNanos)
        }
    }

    /// Completes ``finishedFuture`` once nothing more will be sent and nothing is in flight or waiting.
    private func checkFinished() {
        guard !self.isFinished, self.pace.isDone(now: NIODeadline.now().uptimeNanoseconds), self.inFlight == 0, self.waiting.isEmpty, self.connecting == 0 else { return }
        self.isFinished = true
        self.tally.handOverRecords()
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
