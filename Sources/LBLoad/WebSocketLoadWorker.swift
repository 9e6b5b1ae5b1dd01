import DequeModule
import Foundation
import LBCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The load of one event loop when requests are WebSocket messages (``LoadConfiguration/webSocket``).
///
/// Each of its connections belongs to one client: open loop, a connection per client, whose
/// handshake carries the client's `X-Forwarded-For` (a load balancer sees the client once, when the
/// WebSocket opens); closed loop, `connections` of them, each for the next client of the worker's share. A
/// connection opens on its client's first message and stays open for the run; if it is lost, the
/// next message opens another. Open loop, messages go out when due whatever is on the wire (they
/// are pipelined, and their echoes come back in order), and those due while the connection opens
/// wait for it; latency counts from the due time, as over HTTP. Closed loop, a connection sends its
/// next message when the echo of the last is back. Every method runs on ``eventLoop``.
final class WebSocketLoadWorker: LoadWorking {
    let eventLoop: any EventLoop
    private let configuration: LoadConfiguration
    private let context: LoadRunContext
    /// The message sent when no body is given is the request's id in decimal, so that each echo is
    /// checked against the message it completes.
    private let body: ByteBuffer?

    private var pace: LoadPace

    /// A connection for one client, and the messages that wait for it to open.
    private struct Slot {
        var client: Int
        var handler: WebSocketLoadHandler?
        var channel: (any Channel)?
        var connecting = false
        /// Counts the slot's connection attempts: callbacks of an earlier attempt find it moved on.
        var attempt = 0
        var waiting = Deque<LoadRequest>()
    }
    private var slots: [Slot]
    /// Open loop: the slot of each client of this worker.
    private var slotOfClient: [Int: Int] = [:]
    private var inFlight = 0
    private var openConnections = 0
    private let finished: EventLoopPromise<Void>
    private var isFinished = false
    /// Masking keys for the frames the connections send, seeded from the system's randomness once.
    private var maskKeys: SeededGenerator

    private var tally: LoadTally
    var statistics: LoadStatistics { self.tally.statistics }
    private(set) var firstConnectError: String?

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
        self.pace = LoadPace(configuration: configuration, clients: clients, requestBudget: requestBudget, t0Nanos: context.t0Nanos)
        self.body = configuration.body.isEmpty ? nil : ByteBuffer(bytes: configuration.body)
        self.finished = eventLoop.makePromise()
        self.maskKeys = SeededGenerator(seed: UInt64.random(in: .min ... .max))
        self.tally = LoadTally(configuration: configuration, context: context, bytesOut: configuration.body.count)
        if self.pace.isOpenLoop {
            self.slots = clients.map { Slot(client: $0) }
            for (slot, client) in clients.enumerated() { self.slotOfClient[client] = slot }
        } else {
            let share = LoadRun.closedLoopClients(clients, index: index, configuration)
            self.slots = (0..<max(1, connections)).map { Slot(client: share[$0 % share.count]) }
        }
    }

    var finishedFuture: EventLoopFuture<Void> { self.finished.futureResult }

    // MARK: Starting and stopping

    func start() {
        self.eventLoop.preconditionInEventLoop()
        self.sweepTimeouts()
        self.pace.fire(at: self.context.t0Nanos, on: self.eventLoop) {
            if self.pace.isOpenLoop {
                self.fireDue()
            } else {
                for slot in self.slots.indices { self.open(slot) }
            }
        }
    }

    func stop() {
        self.eventLoop.preconditionInEventLoop()
        guard !self.pace.stopped else { return }
        self.pace.stop()
        let now = NIODeadline.now().uptimeNanoseconds
        for slot in self.slots.indices {
            while let request = self.slots[slot].waiting.popFirst() {
                self.tally.endUnsent(request, at: now, error: .interrupted)
            }
            self.slots[slot].handler?.fail(.interrupted)
        }
        self.checkFinished()
    }

    // MARK: Open loop

    /// Sends every message due by now (more than one when the loop was late: none is skipped).
    private func fireDue() {
        let now = NIODeadline.now().uptimeNanoseconds
        while let (client, due) = self.pace.nextDue(by: now) {
            let request = LoadRequest(id: self.context.newRequestID(), client: client, intendedNanos: due)
            let slot = self.slotOfClient[client]!
            if let handler = self.slots[slot].handler, !handler.isBroken {
                self.send(request, on: handler)
            } else {
                self.slots[slot].waiting.append(request)
                self.open(slot)
            }
        }
        if !self.pace.armNextDue(on: self.eventLoop, { self.fireDue() }) {
            self.checkFinished()
        }
    }

    // MARK: Connections

    /// How the handshake of a connection ended.
    private enum Handshake: Sendable {
        /// Switched; the backend named in the 101's `X-LBLab-Backend`.
        case upgraded(backend: String?)
        /// Answered without switching.
        case refused
    }

    /// Opens the WebSocket of `slot`, unless it is open or opening.
    private func open(_ slot: Int) {
        guard !self.slots[slot].connecting, self.slots[slot].handler.map({ $0.isBroken }) ?? true else { return }
        self.slots[slot].connecting = true
        self.slots[slot].handler = nil
        self.slots[slot].attempt += 1
        let attempt = self.slots[slot].attempt
        let client = self.slots[slot].client
        let target = self.configuration.target
        var headers = HTTPHeaders()
        if !self.configuration.headers.contains(where: { $0.name.lowercased() == "host" }) {
            headers.add(name: "Host", value: target.hostHeader)
        }
        for header in self.configuration.headers { headers.add(name: header.name, value: header.value) }
        headers.add(name: "X-Forwarded-For", value: self.tally.clientIPs[client])
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target.path, headers: headers)
        let worker = NIOLoopBound(self, eventLoop: self.eventLoop)
        let maskSeed = UInt64.random(in: .min ... .max, using: &self.maskKeys)
        ClientBootstrap(group: self.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(LoadPace.connectTimeout(self.configuration.timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<Handshake>(
                        maxFrameSize: 1 << 24,
                        upgradePipelineHandler: { channel, response in
                            channel.eventLoop.makeSucceededFuture(.upgraded(backend: response.headers.first(name: "X-LBLab-Backend")))
                        }
                    )
                    let upgrade = NIOTypedHTTPClientUpgradeConfiguration<Handshake>(
                        upgradeRequestHead: head,
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(.refused) }
                    )
                    try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: .init(upgradeConfiguration: upgrade)
                    ).assumeIsolated().whenComplete { result in
                        worker.value.handshakeEnded(slot, attempt: attempt, channel: channel, result, maskSeed: maskSeed)
                    }
                    worker.value.slots[slot].channel = channel
                }
            }
            .connect(host: target.host, port: target.port)
            .assumeIsolated()
            .whenFailure { error in
                self.connectFailed(slot, attempt: attempt, LoadRun.describe(error))
            }
        // A target that takes the connection but never answers the handshake.
        let timeout = self.configuration.timeout
        self.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            guard self.slots[slot].attempt == attempt, self.slots[slot].connecting else { return }
            let channel = self.slots[slot].channel
            self.connectFailed(slot, attempt: attempt, "no answer to the WebSocket handshake within \(GoDuration.format(timeout))")
            channel?.close(promise: nil)
        }
    }

    private func handshakeEnded(
        _ slot: Int,
        attempt: Int,
        channel: any Channel,
        _ result: Result<Handshake, any Error>,
        maskSeed: UInt64
    ) {
        guard self.slots[slot].attempt == attempt, self.slots[slot].connecting else {
            channel.close(promise: nil)
            return
        }
        switch result {
        case .success(.upgraded(let backend)):
            let handler = WebSocketLoadHandler(
                client: self.slots[slot].client,
                backend: backend,
                maskKeys: SeededGenerator(seed: maskSeed)
            ) { outcome, handler in
                self.messageEnded(outcome, on: handler)
            }
            do {
                try channel.pipeline.syncOperations.addHandler(handler)
            } catch {
                channel.close(promise: nil)
                self.connectFailed(slot, attempt: attempt, LoadRun.describe(error))
                return
            }
            self.slots[slot].connecting = false
            self.slots[slot].handler = handler
            self.openConnections += 1
            self.tally.statistics.peakConnections = max(self.tally.statistics.peakConnections, self.openConnections)
            self.event("ws_open", client: handler.client, backend: backend)
            channel.closeFuture.assumeIsolated().whenComplete { _ in
                self.openConnections -= 1
                self.event("ws_close", client: handler.client, backend: backend, echoes: handler.echoes)
                if self.slots[slot].handler === handler {
                    self.slots[slot].handler = nil
                    self.slots[slot].channel = nil
                    self.connectionLost(slot)
                }
            }
            self.connected(slot, handler: handler)
        case .success(.refused):
            channel.close(promise: nil)
            self.connectFailed(
                slot,
                attempt: attempt,
                "the target did not switch \(self.configuration.target.path) to a WebSocket (no 101 Switching Protocols)"
            )
        case .failure(let error):
            channel.close(promise: nil)
            // After the connect's own failure, if that is what closed the channel: it says why better.
            self.eventLoop.assumeIsolated().execute {
                let reason =
                    error as? ChannelError == .inappropriateOperationForState
                    ? "the connection closed during the WebSocket handshake" : LoadRun.describe(error)
                self.connectFailed(slot, attempt: attempt, reason)
            }
        }
    }

    /// Records an event of `kind` about `client`'s WebSocket now, for the run's `events`: when each
    /// opened (`ws_open`) and closed (`ws_close`, with the messages echoed on it), on which backend.
    private func event(_ kind: String, client: Int, backend: String?, echoes: Int? = nil) {
        guard let sink = self.context.sink else { return }
        var detail: [String: Any] = [:]
        if let backend { detail["backend"] = backend }
        if let echoes { detail["messages"] = echoes }
        let json = (try? JSONSerialization.data(withJSONObject: detail, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
        sink.record(
            RunEvent(
                tMicros: self.context.micros(NIODeadline.now().uptimeNanoseconds),
                kind: kind,
                subject: self.tally.clientIPs[client],
                detailJSON: json
            )
        )
    }

    /// `slot`'s WebSocket is open: what waited goes out, or the closed loop starts.
    private func connected(_ slot: Int, handler: WebSocketLoadHandler) {
        if self.pace.isOpenLoop {
            while !self.pace.stopped, let request = self.slots[slot].waiting.popFirst() {
                self.send(request, on: handler)
            }
        } else {
            self.sendNextClosedLoop(on: handler, now: NIODeadline.now().uptimeNanoseconds)
        }
        self.checkFinished()
    }

    private func connectFailed(_ slot: Int, attempt: Int, _ reason: String) {
        guard self.slots[slot].attempt == attempt, self.slots[slot].connecting else { return }
        self.slots[slot].connecting = false
        if self.firstConnectError == nil {
            self.firstConnectError = reason
        }
        let now = NIODeadline.now().uptimeNanoseconds
        if self.pace.isOpenLoop {
            // What waited for this connection fails; the client's next message tries again.
            while let request = self.slots[slot].waiting.popFirst() {
                self.tally.endUnsent(request, at: now, error: .connectFailed)
            }
        } else if self.pace.takeClosedLoopTurn(now: now) {
            // Closed loop: the failed attempt counts as a message, and the connection tries again after a pause.
            let request = LoadRequest(id: self.context.newRequestID(), client: self.slots[slot].client, intendedNanos: now)
            self.tally.endUnsent(request, at: now, error: .connectFailed)
            self.eventLoop.assumeIsolated().scheduleTask(in: LoadPace.connectRetryPause) { self.open(slot) }
        }
        self.checkFinished()
    }

    /// `slot`'s WebSocket closed; its messages on the wire have ended already. The closed loop opens
    /// another; the open loop waits for the client's next message.
    private func connectionLost(_ slot: Int) {
        if !self.pace.isOpenLoop, self.pace.mayStartClosedLoop(now: NIODeadline.now().uptimeNanoseconds) {
            self.open(slot)
        }
        self.checkFinished()
    }

    // MARK: Messages

    private func send(_ request: LoadRequest, on handler: WebSocketLoadHandler) {
        let payload: ByteBuffer
        if let body = self.body {
            payload = body
        } else {
            var digits = ByteBuffer()
            RequestTemplate.writeDecimal(request.id, into: &digits)
            payload = digits
        }
        let sent = NIODeadline.now().uptimeNanoseconds
        guard handler.send(request, payload: payload, sentNanos: sent, timeoutNanos: UInt64(self.configuration.timeout.nanoseconds)) else {
            // The connection closed meanwhile. Open loop: the message waits for the next one; closed loop:
            // its turn goes back, and the connection's close opens another.
            if self.pace.isOpenLoop, let slot = self.slotOfClient[request.client] {
                self.slots[slot].waiting.prepend(request)
                self.open(slot)
            } else {
                self.pace.giveBackClosedLoopTurn()
            }
            return
        }
        self.inFlight += 1
        self.tally.sent(request, at: sent)
    }

    private func messageEnded(_ outcome: LoadConnectionHandler.Outcome, on handler: WebSocketLoadHandler) {
        self.inFlight -= 1
        self.tally.end(outcome)
        if !self.pace.isOpenLoop, outcome.reusable {
            self.sendNextClosedLoop(on: handler, now: outcome.doneNanos)
        }
        self.checkFinished()
    }

    private func sendNextClosedLoop(on handler: WebSocketLoadHandler, now: UInt64) {
        guard !handler.isBroken, self.pace.takeClosedLoopTurn(now: now) else { return }
        self.send(LoadRequest(id: self.context.newRequestID(), client: handler.client, intendedNanos: now), on: handler)
    }

    /// Times out overdue messages, a sweep every ``LoadPace/sweepPeriod(timeout:)``.
    private func sweepTimeouts() {
        guard !self.isFinished else { return }
        self.tally.handOverRecords()
        let now = NIODeadline.now().uptimeNanoseconds
        for slot in self.slots.indices {
            self.slots[slot].handler?.expireIfOverdue(now: now)
        }
        self.eventLoop.assumeIsolated().scheduleTask(in: LoadPace.sweepPeriod(timeout: self.configuration.timeout)) {
            self.sweepTimeouts()
        }
    }

    /// Closes every WebSocket with a close frame once nothing more will be sent and nothing is in
    /// flight, waiting or opening; completes ``finishedFuture`` when they have closed (and their
    /// `ws_close` events are recorded).
    private func checkFinished() {
        guard !self.isFinished, self.pace.isDone(now: NIODeadline.now().uptimeNanoseconds), self.inFlight == 0,
            self.slots.allSatisfy({ $0.waiting.isEmpty && !$0.connecting })
        else { return }
        self.isFinished = true
        self.tally.handOverRecords()
        var closed: [EventLoopFuture<Void>] = []
        for slot in self.slots.indices {
            guard let channel = self.slots[slot].channel else { continue }
            if let handler = self.slots[slot].handler { handler.close() } else { channel.close(promise: nil) }
            closed.append(channel.closeFuture)
        }
        EventLoopFuture.andAllComplete(closed, on: self.eventLoop).assumeIsolated().whenComplete { _ in
            self.finished.succeed(())
        }
    }
}

@available(*, unavailable)
extension WebSocketLoadWorker: Sendable {}
