import LBConfig
import LBCore
import LBHTTP
import NIOCore

/// Serves one client connection: reads each request's head (``HTTPHead``), routes it to a service,
/// picks a backend with the service's picker, sends the rewritten head over a pooled keep-alive
/// connection, and passes both bodies through as they came, framing included (``HTTPBodyFramer``
/// finds where each ends).
///
/// Requests on a connection are served one at a time: the bytes of pipelined ones wait in the buffer,
/// with reading stopped, until the one before is answered. Bodies stream both ways with
/// backpressure: while the backend's connection cannot take more, the client's reads are held, and the
/// other way round. A failure before any of the response reached the client is retried on another
/// backend when the service's retry policy and budget allow it (a request body is kept for that up to
/// ``replayLimit`` bytes); a connection that could not be made is requeued on another backend at once,
/// within the attempt limit but outside the budget, since nothing reached any backend; otherwise the
/// client gets a 502, 503 or 504 whose body says what happened. A malformed request gets a 400 naming
/// what is wrong, and the connection closes.
///
/// Timeouts (response header, whole request, client idle) share one timer per connection, set for the
/// nearest deadline and moved only when a nearer one comes: on a busy keep-alive connection it fires
/// once per timeout period, not once per request.
final class ProxyHTTPHandler: ChannelDuplexHandler, UpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Request body bytes kept to resend on a retry; a longer body is not retried once sent.
    static let replayLimit = 64 * 1024

    private let loop: LoopContext
    private var context: ChannelHandlerContext?
    private var peer = ""
    private var peerIsTrusted = false
    private var peerKey: UInt64 = 0
    /// Bytes read and not yet consumed: a head not all arrived, or pipelined requests waiting.
    private var inbound: ByteBuffer?
    private var requestFramer = HTTPBodyFramer(.none)
    private var exchange: ProxyExchange?
    /// The exchange object reused for the next request.
    private var spare: ProxyExchange?
    /// Numbers attempts on this connection, so a late connect does not serve a later one.
    private var attempts = 0
    /// Whether ``processInbound()`` is running (it is not entered twice).
    private var processing = false
    /// The connection closes once the current answer is written; nothing more is read.
    private var closing = false
    /// The response's head, with as much of a small body as came with it, not yet written: one write
    /// for both instead of two.
    private var pendingOut: ByteBuffer?
    /// Whether request bytes went to the backend unflushed.
    private var upstreamUnflushed = false
    /// Reads held back while the backend cannot take more, or a pipelined request waits.
    private var readsPaused = false
    private var readPending = false
    /// When the connection, idle between requests, is closed.
    private var idleDeadline = UInt64.max
    private var timer: Scheduled<Void>?
    private var timerDeadline = UInt64.max

    init(loop: LoopContext) {
        self.loop = loop
    }

    private var service: ServiceRuntime? {
        self.exchange.map { self.loop.runtime.services[$0.service] }
    }

    // MARK: Client side

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.peer = context.channel.remoteAddress?.ipAddress ?? "0.0.0.0"
        self.peerIsTrusted = self.loop.runtime.forwarded.isTrusted(self.peer)
        self.peerKey = StableHash.hash(self.peer)
        self.becomeIdle()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.timer?.cancel()
        self.timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        guard !self.closing else { return }
        if self.inbound == nil {
            self.inbound = bytes
        } else {
            self.inbound!.writeBuffer(&bytes)
        }
        self.processInbound()
    }

    /// Consumes what it can of the bytes read: a new request's head, the current request's body, or
    /// nothing while a request waits for the one before it to be answered.
    private func processInbound() {
        guard !self.processing else { return }
        self.processing = true
        defer { self.processing = false }
        while self.context != nil, !self.closing, let available = self.inbound?.readableBytes {
            if self.exchange == nil {
                let head: HTTPHead?
                do {
                    head = try HTTPHead.readRequest(from: &self.inbound!, fields: &self.loop.fields)
                } catch {
                    self.inbound = nil
                    self.writeError(.badRequest, "\(error.reason)", isHEAD: false, keepAlive: false)
                    self.closeAfterAnswer()
                    return
                }
                guard let head else { break }
                self.start(head)
            } else if !self.exchange!.requestComplete {
                guard available > 0 else { break }
                let taken: Int
                do {
                    taken = try self.inbound!.withUnsafeReadableBytes { bytes throws(HTTPMalformed) in try self.requestFramer.scan(bytes) }
                } catch {
                    self.inbound = nil
                    self.requestMalformed(error.reason)
                    return
                }
                if taken > 0 { self.requestBody(self.inbound!.readSlice(length: taken)!) }
                if self.requestFramer.isComplete { self.requestEnd() } else { break }
            } else {
                // A pipelined request waits its turn (responses go out in request order), and reading
                // stops until it is served.
                if available > 0 { self.pauseReads() }
                break
            }
            if self.inbound?.readableBytes == 0 { self.inbound = nil }
        }
        if self.inbound?.readableBytes == 0 { self.inbound = nil }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.upstreamUnflushed {
            self.upstreamUnflushed = false
            self.exchange?.upstream?.channel.flush()
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if self.readsPaused {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client reads slower than the backend sends: hold the backend's reads meanwhile.
        if let upstream = self.exchange?.upstream {
            upstream.channel.setAutoRead(context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client left: whatever is in flight for it is abandoned.
        if self.exchange != nil {
            self.abandonUpstream()
            self.endExchange()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or another I/O error.
        context.close(promise: nil)
    }

    private func start(_ head: HTTPHead) {
        let runtime = self.loop.runtime
        let fields = self.loop.fields
        let serviceIndex: Int
        if let only = runtime.router.onlyService {
            serviceIndex = only
        } else if let routed = runtime.router.route(host: head.host.map(head.string), path: head.string(head.target)) {
            serviceIndex = routed
        } else {
            // The body, if any, is not read: the connection closes after the answer.
            let host = head.host.map(head.string) ?? "(none)"
            self.writeError(.notFound, "no service for host \(host) and path \(head.string(head.target))", isHEAD: head.methodIs("HEAD"), keepAlive: false)
            self.closeAfterAnswer()
            return
        }
        let service = runtime.services[serviceIndex]
        let clientKey: UInt64
        var clientIP = self.peer
        if self.peerIsTrusted && head.hasForwardedFor {
            clientIP = runtime.forwarded.clientAddress(peer: self.peer, peerIsTrusted: true, head: head, fields: fields)
            clientKey = StableHash.hash(clientIP)
        } else {
            clientKey = self.peerKey
        }
        let generatedID = self.loop.newRequestID()
        var upstreamHead = self.context!.channel.allocator.buffer(capacity: head.bytes.readableBytes + 160 + self.peer.utf8.count)
        runtime.forwarded.writeRequestHead(
            head,
            fields: fields,
            peer: self.peer,
            peerIsTrusted: self.peerIsTrusted,
            requestID: generatedID,
            into: &upstreamHead
        )
        let now = self.loop.eventLoop.now.uptimeNanoseconds
        let pick = PickRequest(
            now: Instant(nanoseconds: Int64(now)),
            clientKey: clientKey,
            hashKey: service.settings.hashKey.hash(of: head, fields: fields, clientKey: clientKey)
        )
        let exchange = self.spare ?? ProxyExchange()
        self.spare = nil
        exchange.begin(
            service: serviceIndex,
            head: upstreamHead,
            method: Self.methodName(head),
            clientKeepAlive: head.keepAlive,
            clientIsHTTP10: head.minorVersion == 0,
            pick: pick,
            deadline: now &+ UInt64(max(1, service.settings.timeouts.request.nanoseconds))
        )
        self.exchange = exchange
        if self.loop.records != nil {
            exchange.receivedNanos = now
            exchange.clientIP = clientIP
            exchange.recordID = head.requestID.flatMap { Self.number(head, $0) } ?? Int64(bitPattern: generatedID)
            if runtime.recorder?.accessLog != nil { exchange.target = head.string(head.target) }
        }
        self.requestFramer = HTTPBodyFramer(head.framing)
        if self.requestFramer.isComplete { exchange.requestComplete = true }
        self.loop.retryBudgets[serviceIndex].requestStarted()
        self.armTimer(exchange.deadline)
        self.attempt()
    }

    /// The request id at `range` of `head` as a number, if it is one.
    private static func number(_ head: HTTPHead, _ range: Range<Int>) -> Int64? {
        head.bytes.withUnsafeReadableBytes { HTTPBytes.decimal(UnsafeRawBufferPointer(rebasing: $0[range])) }.map(Int64.init)
    }

    private static let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"]

    /// The request's method; the common ones without allocating a string.
    private static func methodName(_ head: HTTPHead) -> String {
        head.bytes.withUnsafeReadableBytes { bytes in
            let method = UnsafeRawBufferPointer(rebasing: bytes[head.method])
            for name in Self.methods where name.utf8.elementsEqual(method) {
                return name
            }
            return String(decoding: method, as: UTF8.self)
        }
    }

    private func requestBody(_ buffer: ByteBuffer) {
        guard let exchange = self.exchange else { return }
        if exchange.bodyReplayable || exchange.upstream == nil {
            exchange.body.append(buffer)
            exchange.bodyBytes += buffer.readableBytes
            if exchange.bodyBytes > Self.replayLimit { exchange.bodyReplayable = false }
        }
        if let upstream = exchange.upstream {
            upstream.channel.write(buffer, promise: nil)
            self.upstreamUnflushed = true
            if !exchange.bodyReplayable { exchange.body.removeAll() }
            if !upstream.channel.isWritable { self.pauseReads() }
        } else if exchange.bodyBytes > Self.replayLimit {
            // Still connecting and the buffer is full: wait for the connection.
            self.pauseReads()
        }
    }

    private func requestEnd() {
        guard let exchange = self.exchange else { return }
        exchange.requestComplete = true
        if let upstream = exchange.upstream {
            upstream.channel.flush()
            exchange.requestSent = true
        }
    }

    /// The request's body cannot be framed: a 400 if nothing of the response went out, else the
    /// connection closes.
    private func requestMalformed(_ reason: String) {
        guard let exchange = self.exchange else { return }
        self.abandonUpstream()
        if exchange.responseStarted {
            self.endExchange()
            self.context?.close(promise: nil)
        } else {
            self.respondError(.badRequest, reason, keepAlive: false)
        }
    }

    // MARK: Attempts

    private func attempt() {
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
        exchange.pickedNanos = self.loop.eventLoop.now.uptimeNanoseconds
        let attemptID = exchange.attemptID
        let limiter = backend.runtime.limiter
        let admission = limiter.admit(
            now: Instant(nanoseconds: Int64(exchange.pickedNanos)),
            wake: self.waker(attempt: attemptID, limiter: limiter)
        )
        switch admission {
        case .proceed:
            self.proceed(to: backend)
        case .reject:
            let limits = limiter.limits
            self.respondError(
                .serviceUnavailable,
                "\(backend.spec.name) has \(limits.maxConnections) requests in flight and \(limits.maxQueued) waiting, its limits"
            )
        case .wait(let id, let deadline):
            exchange.waiting = (backend, id)
            exchange.queueDeadline = UInt64(max(0, deadline.nanoseconds))
            self.armTimer(exchange.queueDeadline)
        }
    }

    /// What a freed place calls (on any thread) to let attempt `attemptID` proceed on this loop.
    private func waker(attempt attemptID: Int, limiter: BackendLimiter) -> @Sendable () -> Void {
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
    private func placeGranted(_ attemptID: Int) -> Bool {
        guard let exchange = self.exchange, exchange.attemptID == attemptID, let (backend, _) = exchange.waiting else { return false }
        exchange.waiting = nil
        exchange.queueDeadline = .max
        self.proceed(to: backend)
        return true
    }

    /// Sends the current attempt to `backend`, which has a place for it.
    private func proceed(to backend: LoopBackend) {
        guard let exchange = self.exchange, let service = self.service else { return }
        backend.state.requestStarted()
        exchange.backend = backend
        exchange.attemptStartNanos = self.loop.eventLoop.now.uptimeNanoseconds
        let pool = backend.pool
        if let idle = pool.takeIdle() {
            self.connected(idle)
            return
        }
        let attemptID = exchange.attemptID
        pool.connect(timeout: service.settings.timeouts.connect)
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

    private func connected(_ upstream: UpstreamConnection) {
        guard let exchange = self.exchange, let service = self.service else { return }
        upstream.delegate = self
        upstream.expectResponse(toHEAD: exchange.isHEAD)
        exchange.upstream = upstream
        if let client = self.context?.channel, !client.isWritable {
            upstream.channel.setAutoRead(false)
        }
        upstream.channel.write(exchange.head, promise: nil)
        if self.loop.records != nil { exchange.upstreamStartNanos = self.loop.eventLoop.now.uptimeNanoseconds }
        for part in exchange.body {
            upstream.channel.write(part, promise: nil)
        }
        if !exchange.bodyReplayable { exchange.body.removeAll() }
        exchange.headerDeadline = self.loop.eventLoop.now.uptimeNanoseconds &+ UInt64(max(1, service.settings.timeouts.responseHeader.nanoseconds))
        exchange.requestSent = exchange.requestComplete
        self.armTimer(exchange.headerDeadline)
        upstream.channel.flush()
        if !exchange.requestComplete {
            self.resumeReads()
            self.processInbound()
        }
    }

    /// Decides what follows `failure` of the current attempt (see ``LoopContext/nextStep(after:service:method:attempt:canReplay:holdsRetry:)``).
    private func nextStep(after failure: AttemptFailure) -> LoopContext.NextStep {
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
    private func attemptFailed(_ failure: AttemptFailure, detail: String, step decided: LoopContext.NextStep? = nil) {
        guard self.exchange?.backend != nil else { return }
        let step = decided ?? self.nextStep(after: failure)
        if let exchange = self.exchange, let failed = exchange.backend {
            if exchange.firstFailed == nil { exchange.firstFailed = failed }
            self.loop.runtime.services[exchange.service].outlierFailed(failed.runtime, eventLoop: self.loop.eventLoop)
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

    private var backendName: String {
        self.exchange?.backend?.spec.name ?? "?"
    }

    // MARK: UpstreamDelegate

    func upstreamInterim(_ head: HTTPHead) {
        // `100 Continue` and the like go on to an HTTP/1.1 client as they came.
        guard let context = self.context, let exchange = self.exchange, !exchange.clientIsHTTP10 else { return }
        context.writeAndFlush(self.wrapOutboundOut(head.bytes), promise: nil)
    }

    func upstreamHead(_ head: HTTPHead, fields: [HTTPHeaderField]) {
        guard let context = self.context, let exchange = self.exchange else { return }
        if head.status >= 500, let service = self.service,
            service.settings.retries.retryOn.contains(where: { $0.matches(.status(head.status)) })
        {
            // A status worth another backend: retried when policy and budget allow, and then this
            // response is dropped with its connection; otherwise it goes to the client as it is.
            let step = self.nextStep(after: .status(head.status))
            if case .giveUp = step {} else {
                self.attemptFailed(.status(head.status), detail: "\(self.backendName) answered \(head.status)", step: step)
                return
            }
        }
        exchange.headerDeadline = .max
        exchange.responseStarted = true
        exchange.status = head.status
        exchange.clientStatus = head.status
        let keepAlive = exchange.clientKeepAlive && head.framing != .untilClose
        exchange.keepClient = keepAlive
        let connection: ForwardedHeaders.ConnectionHeader = !keepAlive ? .close : exchange.clientIsHTTP10 ? .keepAlive : .none
        var out = context.channel.allocator.buffer(capacity: head.bytes.readableBytes + 64)
        ForwardedHeaders.writeResponseHead(head, fields: fields, backend: self.backendName, connection: connection, into: &out)
        self.pendingOut = out
    }

    /// Bodies up to this size are copied behind the head they came with, to go out in one write.
    private static let coalesceLimit = 8 * 1024

    func upstreamBody(_ bytes: ByteBuffer) {
        guard let context = self.context, self.exchange?.responseStarted == true else { return }
        if var pending = self.pendingOut {
            self.pendingOut = nil
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

    /// Writes the head (and body) held back, if any, and flushes.
    private func flushResponse() {
        guard let context = self.context else { return }
        if let pending = self.pendingOut {
            self.pendingOut = nil
            context.write(self.wrapOutboundOut(pending), promise: nil)
        }
        context.flush()
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

    func upstreamClosed() {
        guard let exchange = self.exchange, exchange.upstream != nil else { return }
        if exchange.responseStarted {
            // Part of the response went out: the client cannot be told otherwise.
            self.flushResponse()
            self.abandonUpstream()
            self.endExchange()
            self.context?.close(promise: nil)
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

    // MARK: Ending

    private func finishExchange() {
        guard let exchange = self.exchange, let backend = exchange.backend, let upstream = exchange.upstream else { return }
        let now = self.loop.eventLoop.now.uptimeNanoseconds
        let latency = Duration.nanoseconds(Int64(now &- exchange.attemptStartNanos))
        backend.state.requestFinished()
        backend.runtime.limiter.release()
        self.loop.services[exchange.service].finished(backend.state, latency: latency, now: Instant(nanoseconds: Int64(now)))
        backend.runtime.metrics.record(status: exchange.status, latency: latency)
        let service = self.loop.runtime.services[exchange.service]
        if exchange.status >= 500 {
            service.outlierFailed(backend.runtime, eventLoop: self.loop.eventLoop)
        } else {
            service.outlierSucceeded(backend.runtime)
        }
        let pool = backend.pool
        if let client = self.context?.channel, !client.isWritable {
            upstream.channel.setAutoRead(true)
        }
        self.exchange?.upstream = nil
        self.exchange?.backend = nil
        if exchange.requestSent && exchange.requestComplete {
            pool.release(upstream, nowNanos: now)
        } else {
            // The backend answered before the body was all sent: the connection is mid-request.
            upstream.delegate = nil
            upstream.channel.close(promise: nil)
        }
        if !exchange.keepClient || !exchange.requestComplete {
            self.endExchange()
            self.closeAfterAnswer()
        } else {
            self.endExchange()
        }
    }

    /// Drops the current upstream connection (closing it) and the backend's in-flight count.
    private func abandonUpstream() {
        guard let exchange = self.exchange else { return }
        if let upstream = exchange.upstream {
            upstream.delegate = nil
            upstream.channel.close(promise: nil)
        }
        if let backend = exchange.backend {
            backend.state.requestFinished()
            backend.runtime.limiter.release()
        }
        if let (backend, id) = exchange.waiting {
            backend.runtime.limiter.cancel(id)
            exchange.waiting = nil
            exchange.queueDeadline = .max
        }
        self.exchange?.upstream = nil
        self.exchange?.backend = nil
    }

    private func endExchange() {
        guard let exchange = self.exchange else { return }
        if let records = self.loop.records { self.record(exchange, into: records) }
        if exchange.isRetry { self.loop.retryBudgets[exchange.service].retryFinished() }
        self.loop.retryBudgets[exchange.service].requestFinished()
        self.exchange = nil
        exchange.clear()
        self.spare = exchange
        self.becomeIdle()
        // Serve the next pipelined request, if its bytes are here.
        if !self.closing {
            self.resumeReads()
            self.processInbound()
        }
    }

    /// Answers the current request with `status` and a one-line body, and ends it.
    private func respondError(_ status: HTTPStatus, _ message: String, keepAlive wanted: Bool = true) {
        guard let exchange = self.exchange else { return }
        let keepAlive = wanted && exchange.clientKeepAlive && exchange.requestComplete
        self.service?.metrics.proxyAnswered(status.code)
        exchange.clientStatus = status.code
        self.writeError(status, message, isHEAD: exchange.isHEAD, keepAlive: keepAlive, http10: exchange.clientIsHTTP10)
        if keepAlive {
            // After the answer is written: ending may start the next pipelined request.
            self.endExchange()
        } else {
            self.endExchange()
            self.closeAfterAnswer()
        }
    }

    /// Writes a response of `status` whose body is one line saying `message`, with `Connection: close`
    /// unless `keepAlive`.
    private func writeError(_ status: HTTPStatus, _ message: String, isHEAD: Bool, keepAlive: Bool, http10: Bool = false) {
        guard let context = self.context else { return }
        let body = "\(status.code) \(status.reason): \(message)\n"
        var out = context.channel.allocator.buffer(capacity: body.utf8.count + 160)
        out.writeString("HTTP/1.1 \(status.code) \(status.reason)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n")
        if !keepAlive {
            out.writeStaticString("Connection: close\r\n")
        } else if http10 {
            out.writeStaticString("Connection: keep-alive\r\n")
        }
        out.writeStaticString("\r\n")
        if !isHEAD { out.writeString(body) }
        context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
    }

    /// Stops reading and closes the connection once what was written has gone out.
    private func closeAfterAnswer() {
        self.closing = true
        self.inbound = nil
        self.context?.close(promise: nil)
    }

    // MARK: Timeouts

    private func becomeIdle() {
        let idle = self.loop.runtime.clientIdleNanos
        self.idleDeadline = self.loop.eventLoop.now.uptimeNanoseconds &+ idle
        self.armTimer(self.idleDeadline)
    }

    /// Makes the timer fire no later than `deadline`.
    private func armTimer(_ deadline: UInt64) {
        guard deadline < self.timerDeadline, self.context != nil else { return }
        self.timer?.cancel()
        self.timerDeadline = deadline
        self.timer = self.loop.eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(deadline)) {
            self.timerFired()
        }
    }

    private func timerFired() {
        self.timer = nil
        self.timerDeadline = .max
        guard self.context != nil else { return }
        let now = self.loop.eventLoop.now.uptimeNanoseconds
        if let exchange = self.exchange {
            if exchange.deadline <= now {
                self.requestTimedOut()
            } else if exchange.queueDeadline <= now, let (backend, id) = exchange.waiting {
                exchange.queueDeadline = .max
                // `false`: a place was granted meanwhile and is on its way to this loop; it proceeds then.
                if backend.runtime.limiter.timedOut(id) {
                    exchange.waiting = nil
                    let limit = GoDuration.format(backend.runtime.limiter.limits.queueTimeout)
                    self.respondError(.serviceUnavailable, "waited \(limit) in the queue of \(backend.spec.name) for a place")
                }
            } else if exchange.headerDeadline <= now, let service = self.service {
                let limit = GoDuration.format(service.settings.timeouts.responseHeader)
                self.attemptFailed(.responseTimedOut, detail: "no response header from \(self.backendName) within \(limit)")
            }
        } else if self.idleDeadline <= now {
            self.closeAfterAnswer()
            return
        }
        if let exchange = self.exchange {
            self.armTimer(min(exchange.deadline, exchange.headerDeadline, exchange.queueDeadline))
        } else if !self.closing {
            self.armTimer(self.idleDeadline)
        }
    }

    private func requestTimedOut() {
        guard let exchange = self.exchange, let service = self.service else { return }
        self.abandonUpstream()
        if exchange.responseStarted {
            // Part of the response went out: all the client can be told is the connection closing.
            self.endExchange()
            self.closeAfterAnswer()
        } else {
            let limit = GoDuration.format(service.settings.timeouts.request)
            self.respondError(.gatewayTimeout, "no response within the request timeout (\(limit))")
        }
    }

    // MARK: Records

    /// The request's row and access-log line.
    private func record(_ exchange: ProxyExchange, into records: LoopRecords) {
        let recorder = records.recorder
        let now = self.loop.eventLoop.now.uptimeNanoseconds
        let backend = exchange.backend ?? exchange.lastBackend
        let backendID = backend.map { recorder.backendID($0.runtime) }
        let row = ProxyRequestRecord(
            requestID: exchange.recordID,
            receivedMicros: recorder.micros(exchange.receivedNanos),
            pickedMicros: exchange.pickedNanos == 0 ? nil : recorder.micros(exchange.pickedNanos),
            backendID: backendID,
            upstreamStartMicros: exchange.upstreamStartNanos == 0 ? nil : recorder.micros(exchange.upstreamStartNanos),
            upstreamDoneMicros: exchange.responseStarted ? recorder.micros(now) : nil,
            status: exchange.clientStatus,
            attempts: exchange.attempt,
            retriedFrom: exchange.firstFailed.map { recorder.backendID($0.runtime) },
            clientIP: exchange.clientIP
        )
        records.add(row) {
            let service = self.loop.runtime.services[exchange.service].settings.name
            var line = #"{"t_us":\#(row.receivedMicros),"request_id":\#(row.requestID),"client":\#(exchange.clientIP.jsonQuoted)"#
            line += #","method":\#(exchange.method.jsonQuoted),"target":\#((exchange.target ?? "").jsonQuoted),"service":\#(service.jsonQuoted)"#
            line += #","backend":\#(backend.map { $0.spec.name.jsonQuoted } ?? "null"),"status":\#(row.status.map(String.init) ?? "null")"#
            line += #","attempts":\#(row.attempts),"duration_us":\#(recorder.micros(now) - row.receivedMicros)}"#
            return line
        }
    }

    // MARK: Reads

    private func pauseReads() {
        self.readsPaused = true
    }

    private func resumeReads() {
        guard self.readsPaused else { return }
        self.readsPaused = false
        if self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }
}

@available(*, unavailable)
extension ProxyHTTPHandler: Sendable {}

/// A status the proxy answers with, and its reason phrase.
struct HTTPStatus {
    var code: Int
    var reason: String

    static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    static let badGateway = HTTPStatus(code: 502, reason: "Bad Gateway")
    static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")
    static let gatewayTimeout = HTTPStatus(code: 504, reason: "Gateway Timeout")

    /// The status of `code`, with the reason phrase of the common ones.
    init(code: Int) {
        let known = [Self.badRequest, .notFound, .badGateway, .serviceUnavailable, .gatewayTimeout,
                     HTTPStatus(code: 500, reason: "Internal Server Error"), HTTPStatus(code: 501, reason: "Not Implemented"),
                     HTTPStatus(code: 505, reason: "HTTP Version Not Supported")]
        self = known.first { $0.code == code } ?? HTTPStatus(code: code, reason: "Error")
    }

    init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }
}

extension Channel {
    /// Sets `autoRead` from the channel's own event loop.
    func setAutoRead(_ on: Bool) {
        _ = try? self.syncOptions?.setOption(.autoRead, value: on)
    }
}
