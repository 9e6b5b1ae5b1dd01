import LBConfig
import LBCore
import LBHTTP
import NIOCore

/// The attempts of a request: picking a backend, waiting for a place with it, connecting, sending,
/// and what follows a failure; and what the backend's connection reports.
extension ProxyHTTPHandler {
    // MARK: Attempts

    /// Picks a backend for the current request at `now` (the caller's clock reading, when it has one)
    /// and sends it there, or waits for a place, or answers 503.
    func attempt(now: UInt64? = nil) {
        guard let exchange = self.exchange, let service = self.service else { return }
        exchange.attempt += 1
        self.attempts += 1
        exchange.attemptID = self.attempts
        guard let backend = self.loop.services[exchange.service].pick(exchange.pick, excluded: exchange.tried) else {
            self.respondError(.serviceUnavailable, "no backend of service \(service.settings.name) is available")
            return
        }
        exchange.lastBackend = backend
        exchange.tried.append(ObjectIdentifier(backend.state))
        exchange.pickedNanos = now ?? self.loop.eventLoop.now.uptimeNanoseconds
        let attemptID = exchange.attemptID
        let limiter = backend.limiter
        let admission = limiter.admit(
            now: Instant(nanoseconds: Int64(exchange.pickedNanos)),
            wake: self.waker(attempt: attemptID, limiter: limiter)
        )
        switch admission {
        case .proceed:
            self.proceed(to: backend, now: exchange.pickedNanos)
        case .reject:
            let limits = limiter.limits
            self.respondError(
                .serviceUnavailable,
                "\(backend.name) has \(limits.maxConnections) requests in flight and \(limits.maxQueued) waiting, its limits"
            )
        case .wait(let id, let deadline):
            exchange.waiting = (backend, id)
            exchange.queueDeadline = UInt64(max(0, deadline.nanoseconds))
            self.armTimer(exchange.queueDeadline)
        }
    }

    /// What a freed place calls (on any thread) to let attempt `attemptID` proceed on this loop.
    func waker(attempt attemptID: Int, limiter: BackendLimiter) -> @Sendable () -> Void {
        let handler = NIOLoopBound(self, eventLoop: self.loop.eventLoop)
        let eventLoop = self.loop.eventLoop
        return {
            eventLoop.execute {
                // The request may be gone (answered, or its client left): the place goes on.
                if !handler.value.placeGranted(attemptID) { limiter.release() }
            }
        }
    }

    /// A place with the backend the request waits for came free; `false` if the request no longer
    /// waits for it.
    func placeGranted(_ attemptID: Int) -> Bool {
        guard let exchange = self.exchange, exchange.attemptID == attemptID, let (backend, _) = exchange.waiting else { return false }
        exchange.waiting = nil
        exchange.queueDeadline = .max
        self.proceed(to: backend)
        return true
    }

    /// Sends the current attempt to `backend`, which has a place for it, at `now`.
    func proceed(to backend: LoopBackend, now: UInt64? = nil) {
        guard let exchange = self.exchange else { return }
        backend.state.requestStarted()
        exchange.backend = backend
        exchange.attemptStartNanos = now ?? self.loop.eventLoop.now.uptimeNanoseconds
        // A protocol switch goes on a new connection: it becomes the tunnel and never returns to the
        // pool, and servers such as SwiftNIO's switch only on a connection's first request (one taken
        // from the pool answered the handshake as a plain request).
        if !exchange.upgrade, let idle = backend.pool.takeIdle() {
            self.connected(idle, now: exchange.attemptStartNanos)
            return
        }
        self.connect(to: backend)
    }

    /// Opens a new connection to `backend`, which holds the current attempt's place, and sends the
    /// request on it.
    func connect(to backend: LoopBackend) {
        guard let exchange = self.exchange else { return }
        let pool = backend.pool
        let attemptID = exchange.attemptID
        pool.connect(timeout: self.loop.services[exchange.service].tunables.timeouts.connect)
            .assumeIsolated()
            .whenComplete { result in
                guard let current = self.exchange, current.attemptID == attemptID, current.upstream == nil else {
                    // The exchange ended (client gone, timed out) while connecting.
                    if case .success(let connection) = result {
                        pool.release(connection, nowNanos: self.loop.eventLoop.now.uptimeNanoseconds)
                    }
                    return
                }
                switch result {
                case .success(let connection):
                    self.connected(connection)
                case .failure(let error):
                    let failure: AttemptFailure
                    if case ChannelError.connectTimeout = error { failure = .connectTimedOut } else { failure = .connectFailed }
                    self.attemptFailed(failure, detail: "could not connect to \(backend.spec.name) (\(backend.spec.address)): \(error)")
                }
            }
    }

    /// The attempt has `upstream` to send on, at `now`.
    func connected(_ upstream: UpstreamConnection, now: UInt64? = nil) {
        guard let exchange = self.exchange else { return }
        upstream.delegate = self
        upstream.expectResponse(toHEAD: exchange.isHEAD, upgrade: exchange.upgrade)
        exchange.upstream = upstream
        if let client = self.context?.channel, !client.isWritable {
            upstream.channel.setAutoRead(false)
        }
        if upstream.send(exchange.head, body: exchange.body) { self.loop.flushAtEndOfTick(upstream) }
        let now = now ?? self.loop.eventLoop.now.uptimeNanoseconds
        exchange.upstreamStartNanos = now
        if !exchange.bodyReplayable { exchange.body.removeAll() }
        exchange.headerDeadline = now &+ UInt64(max(1, self.loop.services[exchange.service].tunables.timeouts.responseHeader.nanoseconds))
        exchange.requestSent = exchange.requestComplete
        self.armTimer(exchange.headerDeadline)
        if !exchange.requestComplete {
            self.resumeReads()
            self.processInbound()
        }
    }

    /// Decides what follows `failure` of the current attempt (see ``LoopContext/nextStep(after:service:method:attempt:canReplay:holdsRetry:)``).
    func nextStep(after failure: AttemptFailure) -> NextAttempt {
        guard let exchange = self.exchange else { return .giveUp }
        let canReplay = exchange.bodyReplayable || exchange.bodyBytes == 0 && !failure.requestMayHaveBeenProcessed
        let step = self.loop.nextStep(
            after: failure,
            service: exchange.service,
            method: exchange.method,
            attempt: exchange.attempt,
            canReplay: canReplay,
            holdsRetry: &exchange.isRetry
        )
        return step
    }

    /// The current attempt failed before any of the response reached the client: its connection (if
    /// any) is closed, and the request retried or answered with an error. `step` is the decision, when
    /// the caller has made it already.
    func attemptFailed(_ failure: AttemptFailure, detail: String, step decided: NextAttempt? = nil) {
        guard self.exchange?.backend != nil else { return }
        let step = decided ?? self.nextStep(after: failure)
        if let exchange = self.exchange, let failed = exchange.backend {
            if exchange.firstFailed == nil { exchange.firstFailed = failed }
            self.loop.services[exchange.service].runtime.outlierFailed(failed.runtime, eventLoop: self.loop.eventLoop)
        }
        self.abandonUpstream()
        self.exchange?.headerDeadline = .max
        self.exchange?.requestSent = false
        switch step {
        case .requeue:
            self.service?.metrics.retries.increment()
            let failed = self.attempts
            self.loop.eventLoop.assumeIsolated().execute {
                guard self.exchange?.attemptID == failed else { return }
                self.attempt()
            }
        case .retry(let delay):
            self.service?.metrics.retries.increment()
            let failed = self.attempts
            self.loop.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(max(0, delay.nanoseconds))) {
                guard self.exchange?.attemptID == failed else { return }
                self.attempt()
            }
        case .giveUp:
            switch failure {
            case .responseTimedOut:
                self.respondError(.gatewayTimeout, detail)
            case .status(let code):
                self.respondError(HTTPStatus(code: code), detail)
            default:
                self.respondError(.badGateway, detail)
            }
        }
    }

    var backendName: String {
        self.exchange?.backend?.name ?? "?"
    }

    // MARK: UpstreamDelegate

    func upstreamInterim(_ head: HTTPHead) {
        // `100 Continue` and the like go on to an HTTP/1.1 client as they came.
        guard let context = self.context, let exchange = self.exchange, !exchange.clientIsHTTP10 else { return }
        context.writeAndFlush(self.wrapOutboundOut(head.bytes), promise: nil)
    }

    func upstreamHead(_ head: HTTPHead, fields: [HTTPHeaderField]) {
        guard let context = self.context, let exchange = self.exchange else { return }
        if head.status >= 500,
            self.loop.services[exchange.service].tunables.retries.retryOn.contains(where: { $0.matches(.status(head.status)) })
        {
            // A status worth another backend: retried when policy and budget allow, and then this
            // response is dropped with its connection; otherwise it goes to the client as it is.
            let step = self.nextStep(after: .status(head.status))
            if case .giveUp = step {} else {
                self.attemptFailed(.status(head.status), detail: "\(self.backendName) answered \(head.status)", step: step)
                return
            }
        }
        if head.status == 101 {
            // Asked for (the connection checked): the exchange becomes a tunnel.
            self.switchProtocols(head, fields: fields, context: context)
            return
        }
        exchange.responseBegan(status: head.status)
        let keepAlive = exchange.clientKeepAlive && head.framing != .untilClose
        exchange.keepClient = keepAlive
        let connection: ForwardedHeaders.ConnectionHeader = !keepAlive ? .close : exchange.clientIsHTTP10 ? .keepAlive : .none
        self.holdResponseHead(head, fields: fields, connection: connection, context: context)
    }

    /// Holds `head` as it goes to the client, saying `connection`, to go out in one write with the
    /// body bytes that came with it.
    func holdResponseHead(_ head: HTTPHead, fields: [HTTPHeaderField], connection: ForwardedHeaders.ConnectionHeader, context: ChannelHandlerContext) {
        guard let exchange = self.exchange else { return }
        var out = exchange.takeResponseBuffer(capacity: head.bytes.readableBytes + 64, allocator: context.channel.allocator)
        ForwardedHeaders.writeResponseHead(head, fields: fields, backend: self.backendName, connection: connection, into: &out)
        self.pendingOut = out
    }

    /// The backend switched protocols (`101`): its head goes to the client, and from here the two
    /// connections are a tunnel. The bytes of either side pass to the other as they come (the
    /// client's through its request framer, set to run until the close; the backend's as a body that
    /// does the same), with backpressure as for bodies, until either side closes or both are silent for
    /// the service's tunnel timeout; then both close. The backend keeps the request's place (its
    /// in-flight count, its connection limit) for the tunnel's life, which least-connections balances
    /// by; its picker, metrics and outlier detection learn the handshake, answered like any request.
    func switchProtocols(_ head: HTTPHead, fields: [HTTPHeaderField], context: ChannelHandlerContext) {
        guard let exchange = self.exchange, let backend = exchange.backend else { return }
        let now = self.loop.eventLoop.now.uptimeNanoseconds
        exchange.responseBegan(status: head.status)
        exchange.keepClient = false
        exchange.tunnel = true
        self.learn(exchange, backend: backend, now: now)
        exchange.lastActivityNanos = now
        exchange.tunnelIdleNanos = UInt64(max(1, self.loop.services[exchange.service].tunables.timeouts.tunnel.nanoseconds))
        exchange.deadline = now &+ exchange.tunnelIdleNanos
        self.armTimer(exchange.deadline)
        self.holdResponseHead(head, fields: fields, connection: .upgrade, context: context)
        // What the client sends from here (some clients send before the 101 comes) is the new
        // protocol's, for the backend.
        exchange.body.removeAll()
        exchange.bodyReplayable = false
        exchange.requestComplete = false
        self.requestFramer = HTTPBodyFramer(.untilClose)
        self.resumeReads()
        self.processInbound()
    }

    /// Bodies up to this size are copied behind the head they came with, to go out in one write.
    static let coalesceLimit = 8 * 1024

    func upstreamBody(_ bytes: ByteBuffer) {
        guard let context = self.context, let exchange = self.exchange, exchange.responseStarted else { return }
        if exchange.tunnel { exchange.lastActivityNanos = self.loop.eventLoop.now.uptimeNanoseconds }
        if var pending = self.pendingOut.take() {
            if bytes.readableBytes <= Self.coalesceLimit {
                pending.writeImmutableBuffer(bytes)
                self.pendingOut = pending
                return
            }
            context.write(self.wrapOutboundOut(pending), promise: nil)
        }
        context.write(self.wrapOutboundOut(bytes), promise: nil)
        if !context.channel.isWritable { context.flush() }
    }

    /// Writes the head (and body) held back, if any, to be flushed at the end of the event loop's tick.
    func flushResponse() {
        guard let context = self.context else { return }
        if let pending = self.pendingOut.take() {
            context.write(self.wrapOutboundOut(pending), promise: nil)
            // Once the socket has taken it, the next response can reuse its storage.
            self.exchange?.keepResponseBuffer(pending)
        }
        self.flushAtEndOfTick()
    }

    /// Has the connection flushed at the end of the event loop's tick (``LoopContext``).
    func flushAtEndOfTick() {
        guard !self.flushPending else { return }
        self.flushPending = true
        self.loop.flushAtEndOfTick(self)
    }

    /// Flushes what was written, if a flush is due and the connection is open.
    func flushIfPending() {
        guard self.flushPending else { return }
        self.flushPending = false
        self.context?.flush()
    }

    func upstreamEnd() {
        guard self.context != nil, self.exchange?.responseStarted == true else { return }
        self.flushResponse()
        self.finishExchange()
    }

    func upstreamReadComplete() {
        guard self.exchange?.responseStarted == true else { return }
        self.flushResponse()
    }

    func upstreamClosed(malformed: HTTPMalformed?) {
        guard let exchange = self.exchange, exchange.upstream != nil else { return }
        if exchange.responseStarted {
            // Part of the response went out: the client cannot be told otherwise.
            self.flushResponse()
            self.abandonUpstream()
            self.endExchange(close: true)
        } else if let malformed {
            // Retried as a broken connection is: the request may have reached the backend.
            self.attemptFailed(.connectionReset, detail: "\(self.backendName) sent a malformed response: \(malformed.reason)")
        } else if let upstream = exchange.upstream, upstream.isReused, !upstream.receivedAny, !exchange.resent,
            let backend = exchange.backend, exchange.bodyReplayable, RetryPolicy.isIdempotent(method: exchange.method)
        {
            // A kept-alive connection that the backend closed as the request went out (its idle
            // timeout, or a restart), with nothing back: the request goes again, once, on a new
            // connection to the same backend, keeping its place there; not a failure of the backend,
            // nor an attempt of the retry policy (nginx treats a cached connection alike).
            exchange.resent = true
            upstream.delegate = nil
            upstream.channel.close(promise: nil)
            exchange.upstream = nil
            exchange.headerDeadline = .max
            exchange.requestSent = false
            self.connect(to: backend)
        } else {
            self.attemptFailed(.connectionReset, detail: "\(self.backendName) closed the connection before a response")
        }
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if writable {
            self.resumeReads()
        } else {
            self.pauseReads()
        }
    }
}
