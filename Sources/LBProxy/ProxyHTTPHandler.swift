import LBConfig
import LBCore
import NIOCore
import NIOHTTP1

/// Serves one client connection: routes each request to a service, picks a backend with the service's
/// picker, forwards the request over a pooled keep-alive connection and streams the response back.
///
/// Requests on a connection are served one at a time: pipelined ones are queued and answered in order. Bodies stream both ways with backpressure: while the backend's
/// connection cannot take more, the client's reads are held, and the other way round. A failure
/// before any of the response reached the client is retried on another backend when the service's
/// retry policy and budget allow it (a request body is kept for that up to ``replayLimit`` bytes);
/// a connection that could not be made is requeued on another backend at once, within the attempt
/// limit but outside the budget, since nothing reached any backend; otherwise the client gets a 502,
/// 503 or 504 whose body says what happened.
final class ProxyHTTPHandler: ChannelDuplexHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Request body bytes kept to resend on a retry; a longer body is not retried once sent.
    static let replayLimit = 64 * 1024

    private let loop: LoopContext
    private var context: ChannelHandlerContext?
    private var peer = ""
    private var peerIsTrusted = false
    /// Parts of pipelined requests that arrived while one was being served, replayed when it ends.
    private var queued: [HTTPServerRequestPart] = []
    private var exchange: ProxyExchange?
    /// Reads held back while the backend cannot take more of the request body.
    private var readsPaused = false
    private var readPending = false

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
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if !self.queued.isEmpty || (self.exchange?.requestComplete ?? false) {
            // A pipelined request while the previous one is still being answered: it waits its turn
            // (responses go out in request order), and reading stops until it is served.
            self.queued.append(part)
            self.pauseReads()
            return
        }
        self.dispatch(part)
    }

    private func dispatch(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            self.start(head)
        case .body(let buffer):
            self.requestBody(buffer)
        case .end:
            self.requestEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.exchange?.upstream?.channel.flush()
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
        // A malformed request (NIO's HTTPServerProtocolErrorHandler answers 400) or a reset.
        context.close(promise: nil)
    }

    private func start(_ incoming: HTTPRequestHead) {
        let runtime = self.loop.runtime
        var head = incoming
        guard let serviceIndex = runtime.router.route(host: head.headers.first(name: "host"), path: head.uri) else {
            // The body, if any, is not read: the connection closes after the answer.
            self.writeError(
                .notFound,
                "no service for host \(head.headers.first(name: "host") ?? "(none)") and path \(head.uri)",
                method: head.method,
                keepAlive: false
            )
            self.context?.close(promise: nil)
            return
        }
        let service = runtime.services[serviceIndex]
        let client = runtime.forwarded.clientAddress(peer: self.peer, peerIsTrusted: self.peerIsTrusted, headers: head.headers)
        let keepAlive = head.isKeepAlive
        runtime.forwarded.prepareRequest(&head.headers, peer: self.peer, peerIsTrusted: self.peerIsTrusted, requestID: self.loop.newRequestID())
        head.version = .http1_1
        let now = NIODeadline.now().uptimeNanoseconds
        let pick = PickRequest(
            now: Instant(nanoseconds: Int64(now)),
            clientKey: StableHash.hash(client),
            hashKey: service.settings.hashKey.hash(of: incoming, client: client)
        )
        self.exchange = ProxyExchange(service: serviceIndex, head: head, clientKeepAlive: keepAlive, pick: pick)
        self.loop.retryBudgets[serviceIndex].requestStarted()
        let timeout = TimeAmount.nanoseconds(max(1, service.settings.timeouts.request.nanoseconds))
        self.exchange?.requestTimer = self.loop.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.requestTimedOut()
        }
        self.attempt()
    }

    private func requestBody(_ buffer: ByteBuffer) {
        guard var exchange = self.exchange else { return }
        if exchange.bodyReplayable || exchange.upstream == nil {
            exchange.body.append(buffer)
            exchange.bodyBytes += buffer.readableBytes
            if exchange.bodyBytes > Self.replayLimit { exchange.bodyReplayable = false }
        }
        if let upstream = exchange.upstream {
            upstream.channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
            if !exchange.bodyReplayable { exchange.body.removeAll() }
            if !upstream.channel.isWritable { self.pauseReads() }
        } else if exchange.bodyBytes > Self.replayLimit {
            // Still connecting and the buffer is full: wait for the connection.
            self.pauseReads()
        }
        self.exchange = exchange
    }

    private func requestEnd() {
        guard self.exchange != nil else { return }
        self.exchange!.requestComplete = true
        if let upstream = self.exchange!.upstream {
            self.sendEnd(on: upstream)
        }
    }

    // MARK: Attempts

    private func attempt() {
        guard var exchange = self.exchange, let service = self.service else { return }
        exchange.attempt += 1
        guard let backendIndex = self.loop.pick(service: exchange.service, request: exchange.pick, excluded: exchange.tried) else {
            self.exchange = exchange
            self.respondError(.serviceUnavailable, "no backend of service \(service.settings.name) is available")
            return
        }
        let backend = service.backends[backendIndex]
        backend.state.requestStarted()
        exchange.backend = backendIndex
        exchange.tried.append(backendIndex)
        exchange.attemptStartNanos = NIODeadline.now().uptimeNanoseconds
        self.exchange = exchange
        let attemptNumber = exchange.attempt
        self.loop.pools[exchange.service][backendIndex].acquire(connectTimeout: service.settings.timeouts.connect)
            .assumeIsolated()
            .whenComplete { result in
                guard let current = self.exchange, current.attempt == attemptNumber, current.upstream == nil else {
                    // The exchange ended (client gone, timed out) while connecting.
                    if case .success(let connection) = result {
                        self.loop.pools[exchange.service][backendIndex].release(connection, nowNanos: NIODeadline.now().uptimeNanoseconds)
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
        guard var exchange = self.exchange, let service = self.service else { return }
        upstream.delegate = self
        exchange.upstream = upstream
        if let client = self.context?.channel, !client.isWritable {
            upstream.channel.setAutoRead(false)
        }
        upstream.channel.write(HTTPClientRequestPart.head(exchange.head), promise: nil)
        for part in exchange.body {
            upstream.channel.write(HTTPClientRequestPart.body(.byteBuffer(part)), promise: nil)
        }
        if !exchange.bodyReplayable { exchange.body.removeAll() }
        let timeout = TimeAmount.nanoseconds(max(1, service.settings.timeouts.responseHeader.nanoseconds))
        let attemptNumber = exchange.attempt
        exchange.headerTimer = self.loop.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard let current = self.exchange, current.attempt == attemptNumber, !current.responseStarted else { return }
            self.attemptFailed(.responseTimedOut, detail: "no response header from \(self.backendName) within \(GoDuration.format(service.settings.timeouts.responseHeader))")
        }
        self.exchange = exchange
        if exchange.requestComplete {
            self.sendEnd(on: upstream)
        } else {
            upstream.channel.flush()
            self.resumeReads()
        }
    }

    private func sendEnd(on upstream: UpstreamConnection) {
        upstream.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        self.exchange?.requestSent = true
    }

    /// Decides what follows `failure` of the current attempt (see ``LoopContext/nextStep(after:service:method:attempt:canReplay:holdsRetry:)``).
    private func nextStep(after failure: AttemptFailure) -> LoopContext.NextStep {
        guard var exchange = self.exchange else { return .giveUp }
        let canReplay = exchange.bodyReplayable || exchange.bodyBytes == 0 && !failure.requestMayHaveBeenProcessed
        let step = self.loop.nextStep(
            after: failure,
            service: exchange.service,
            method: exchange.head.method.rawValue,
            attempt: exchange.attempt,
            canReplay: canReplay,
            holdsRetry: &exchange.isRetry
        )
        self.exchange?.isRetry = exchange.isRetry
        return step
    }

    /// The current attempt failed before any of the response reached the client: its connection (if
    /// any) is closed, and the request retried or answered with an error. `step` is the decision, when
    /// the caller has made it already.
    private func attemptFailed(_ failure: AttemptFailure, detail: String, step decided: LoopContext.NextStep? = nil) {
        guard self.exchange?.backend != nil else { return }
        let step = decided ?? self.nextStep(after: failure)
        self.abandonUpstream()
        self.exchange?.headerTimer?.cancel()
        self.exchange?.headerTimer = nil
        self.exchange?.requestSent = false
        switch step {
        case .requeue:
            self.loop.eventLoop.assumeIsolated().execute {
                guard self.exchange != nil else { return }
                self.attempt()
            }
        case .retry(let delay):
            self.loop.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(max(0, delay.nanoseconds))) {
                guard self.exchange != nil else { return }
                self.attempt()
            }
        case .giveUp:
            switch failure {
            case .responseTimedOut:
                self.respondError(.gatewayTimeout, detail)
            case .status(let code):
                self.respondError(HTTPResponseStatus(statusCode: code), detail)
            default:
                self.respondError(.badGateway, detail)
            }
        }
    }

    private var backendName: String {
        guard let exchange = self.exchange, let backend = exchange.backend, let service = self.service else { return "?" }
        return service.backends[backend].spec.name
    }

    // MARK: UpstreamDelegate

    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard let context = self.context, var exchange = self.exchange else { return }
        switch part {
        case .head(var head):
            let status = Int(head.status.code)
            if status >= 500, let service = self.service,
                service.settings.retries.retryOn.contains(where: { $0.matches(.status(status)) })
            {
                // A status worth another backend: retried when policy and budget allow, and then this
                // response is dropped with its connection; otherwise it goes to the client as it is.
                let step = self.nextStep(after: .status(status))
                if case .giveUp = step {} else {
                    self.attemptFailed(.status(status), detail: "\(self.backendName) answered \(status)", step: step)
                    return
                }
                exchange = self.exchange!
            }
            exchange.headerTimer?.cancel()
            exchange.headerTimer = nil
            exchange.responseStarted = true
            ForwardedHeaders.removeHopByHop(&head.headers)
            head.headers.replaceOrAdd(name: "X-LBLab-Backend", value: self.backendName)
            head.version = HTTPVersion(major: 1, minor: 1)
            if !exchange.clientKeepAlive { head.headers.replaceOrAdd(name: "Connection", value: "close") }
            self.exchange = exchange
            context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            if !context.channel.isWritable { context.flush() }
        case .end(let trailers):
            context.writeAndFlush(self.wrapOutboundOut(.end(trailers)), promise: nil)
            self.finishExchange()
        }
    }

    func upstreamClosed() {
        guard let exchange = self.exchange, exchange.upstream != nil else { return }
        if exchange.responseStarted {
            // Part of the response went out: the client cannot be told otherwise.
            self.abandonUpstream()
            self.endExchange()
            self.context?.close(promise: nil)
        } else {
            self.attemptFailed(.connectionReset, detail: "\(self.backendName) closed the connection before a response")
        }
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        writable ? self.resumeReads() : self.pauseReads()
    }

    // MARK: Ending

    private func finishExchange() {
        guard let exchange = self.exchange, let service = self.service, let backendIndex = exchange.backend,
            let upstream = exchange.upstream
        else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        let backend = service.backends[backendIndex]
        backend.state.requestFinished()
        self.loop.finished(
            service: exchange.service,
            backend: backend.state,
            latency: .nanoseconds(Int64(now &- exchange.attemptStartNanos)),
            now: Instant(nanoseconds: Int64(now))
        )
        let pool = self.loop.pools[exchange.service][backendIndex]
        if let client = self.context?.channel, !client.isWritable {
            upstream.channel.setAutoRead(true)
        }
        if exchange.requestSent {
            pool.release(upstream, nowNanos: now)
        } else {
            // The backend answered before the body was all sent: the connection is mid-request.
            upstream.delegate = nil
            upstream.channel.close(promise: nil)
        }
        self.exchange?.upstream = nil
        self.exchange?.backend = nil
        let keepAlive = exchange.clientKeepAlive && exchange.requestComplete
        self.endExchange()
        if !keepAlive { self.context?.close(promise: nil) }
    }

    /// Drops the current upstream connection (closing it) and the backend's in-flight count.
    private func abandonUpstream() {
        guard let exchange = self.exchange else { return }
        if let upstream = exchange.upstream {
            upstream.delegate = nil
            upstream.channel.close(promise: nil)
        }
        if let backendIndex = exchange.backend {
            self.loop.runtime.services[exchange.service].backends[backendIndex].state.requestFinished()
        }
        self.exchange?.upstream = nil
        self.exchange?.backend = nil
    }

    private func endExchange() {
        guard let exchange = self.exchange else { return }
        exchange.headerTimer?.cancel()
        exchange.requestTimer?.cancel()
        if exchange.isRetry { self.loop.retryBudgets[exchange.service].retryFinished() }
        self.loop.retryBudgets[exchange.service].requestFinished()
        self.exchange = nil
        // Serve the next pipelined request: its head, and its body and end while it is being read.
        while let next = self.queued.first, self.context != nil {
            if case .head = next, self.exchange != nil { break }
            self.queued.removeFirst()
            self.dispatch(next)
        }
        if self.queued.isEmpty { self.resumeReads() }
    }

    private func requestTimedOut() {
        guard let exchange = self.exchange, let service = self.service else { return }
        self.abandonUpstream()
        if exchange.responseStarted {
            // Part of the response went out: all the client can be told is the connection closing.
            self.endExchange()
            self.context?.close(promise: nil)
        } else {
            let limit = GoDuration.format(service.settings.timeouts.request)
            self.respondError(.gatewayTimeout, "no response within the request timeout (\(limit))")
        }
    }

    /// Answers the current request with `status` and a one-line body, and ends it.
    private func respondError(_ status: HTTPResponseStatus, _ message: String) {
        guard let exchange = self.exchange else { return }
        let keepAlive = exchange.clientKeepAlive && exchange.requestComplete
        self.writeError(status, message, method: exchange.head.method, keepAlive: keepAlive)
        // After the answer is written: ending may start the next pipelined request.
        self.endExchange()
        if !keepAlive { self.context?.close(promise: nil) }
    }

    /// Writes a response of `status` whose body is one line saying `message`, with `Connection: close`
    /// unless `keepAlive` (the caller closes).
    private func writeError(_ status: HTTPResponseStatus, _ message: String, method: HTTPMethod, keepAlive: Bool) {
        guard let context = self.context else { return }
        var body = context.channel.allocator.buffer(capacity: message.utf8.count + 32)
        body.writeString("\(status.code) \(status.reasonPhrase): \(message)\n")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if method != .HEAD {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
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

extension Channel {
    /// Sets `autoRead` from the channel's own event loop.
    func setAutoRead(_ on: Bool) {
        _ = try? self.syncOptions?.setOption(.autoRead, value: on)
    }
}
