import LBConfig
import LBCore
import NIOCore
import NIOHTTP1

/// Serves one client connection: routes each request to a service, picks a backend with the service's
/// picker, forwards the request over a pooled keep-alive connection and streams the response back.
///
/// Requests on a connection are served one at a time (NIO's `HTTPServerPipelineHandler`, in front,
/// holds pipelined ones back). Bodies stream both ways with backpressure: while the backend's
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
    private var exchange: Exchange?
    /// Reads held back while the backend cannot take more of the request body.
    private var readsPaused = false
    private var readPending = false

    /// One request's way through the proxy.
    private struct Exchange {
        let service: Int
        var head: HTTPRequestHead
        let clientKeepAlive: Bool
        let pick: PickRequest
        let startNanos: UInt64
        var attempt = 0
        var tried: [Int] = []
        var backend: Int?
        var attemptStartNanos: UInt64 = 0
        var upstream: UpstreamConnection?
        /// Body parts received and not yet sent (while connecting), or kept for a retry.
        var body: [ByteBuffer] = []
        var bodyBytes = 0
        var bodyReplayable = true
        var requestComplete = false
        var requestSent = false
        var responseStarted = false
        var headerTimer: Scheduled<Void>?
        var requestTimer: Scheduled<Void>?
        /// Whether the attempt in flight is a retry (and holds a place in the retry budget).
        var isRetry = false
    }

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
            self.exchange = Exchange(service: -1, head: head, clientKeepAlive: head.isKeepAlive, pick: PickRequest(now: .zero), startNanos: 0)
            self.respondError(.notFound, "no service for host \(head.headers.first(name: "host") ?? "(none)") and path \(head.uri)")
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
            hashKey: Self.hashKey(service.settings.hashKey, head: incoming, client: client)
        )
        self.exchange = Exchange(service: serviceIndex, head: head, clientKeepAlive: keepAlive, pick: pick, startNanos: now)
        self.loop.retryBudgets[serviceIndex].requestStarted()
        let timeout = TimeAmount.nanoseconds(max(1, service.settings.timeouts.request.nanoseconds))
        self.exchange?.requestTimer = self.loop.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.requestTimedOut()
        }
        self.attempt()
    }

    private func requestBody(_ buffer: ByteBuffer) {
        guard var exchange = self.exchange, exchange.service >= 0 else { return }
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
        guard self.exchange != nil, self.exchange!.service >= 0 else { return }
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

    /// What to do after a failed attempt.
    private enum NextStep {
        /// Try another backend at once: nothing reached a backend.
        case requeue
        /// Try another backend after the backoff; the retry holds a place in the budget.
        case retry(after: Duration)
        /// Answer the client.
        case giveUp
    }

    /// Decides what follows `failure` of the current attempt, taking a place in the retry budget when
    /// the answer is a retry (the attempt that failed, if it was a retry, gives its place back).
    private func nextStep(after failure: AttemptFailure) -> NextStep {
        guard let exchange = self.exchange, let service = self.service else { return .giveUp }
        let canReplay = exchange.bodyReplayable || exchange.bodyBytes == 0 && !failure.requestMayHaveBeenProcessed
        let decision = service.settings.retries.decide(
            method: exchange.head.method.rawValue,
            failure: failure,
            attempt: exchange.attempt,
            using: &self.loop.generator
        )
        guard case .retry(let delay) = decision, canReplay else { return .giveUp }
        if !failure.requestMayHaveBeenProcessed {
            // Nothing reached the backend (the connection was refused or never made): another backend
            // at once is a requeue (Finagle's word). It adds load to no one, so only the attempt limit
            // bounds it, not the budget.
            return .requeue
        }
        if exchange.isRetry {
            self.loop.retryBudgets[exchange.service].retryFinished()
            self.exchange?.isRetry = false
        }
        guard self.loop.retryBudgets[exchange.service].retryStarted() else { return .giveUp }
        self.exchange?.isRetry = true
        return .retry(after: delay)
    }

    /// The current attempt failed before any of the response reached the client: its connection (if
    /// any) is closed, and the request retried or answered with an error. `step` is the decision, when
    /// the caller has made it already.
    private func attemptFailed(_ failure: AttemptFailure, detail: String, step decided: NextStep? = nil) {
        guard var exchange = self.exchange, let service = self.service, let backendIndex = exchange.backend else { return }
        let step = decided ?? self.nextStep(after: failure)
        exchange = self.exchange!
        if let upstream = exchange.upstream {
            upstream.delegate = nil
            upstream.channel.close(promise: nil)
        }
        exchange.headerTimer?.cancel()
        exchange.headerTimer = nil
        exchange.upstream = nil
        exchange.backend = nil
        exchange.requestSent = false
        service.backends[backendIndex].state.requestFinished()
        self.exchange = exchange
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
        guard let exchange = self.exchange, exchange.service >= 0 else { return }
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
        if exchange.service >= 0 {
            if exchange.isRetry { self.loop.retryBudgets[exchange.service].retryFinished() }
            self.loop.retryBudgets[exchange.service].requestFinished()
        }
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
        let limit = GoDuration.format(service.settings.timeouts.request)
        if exchange.responseStarted {
            self.abandonUpstream()
            self.endExchange()
            self.context?.close(promise: nil)
        } else {
            self.abandonUpstream()
            self.respondError(.gatewayTimeout, "no response within the request timeout (\(limit))")
        }
    }

    /// Answers the current request with `status` and a one-line body, and ends it.
    private func respondError(_ status: HTTPResponseStatus, _ message: String) {
        guard let context = self.context, let exchange = self.exchange else { return }
        var body = context.channel.allocator.buffer(capacity: message.utf8.count + 32)
        body.writeString("\(status.code) \(status.reasonPhrase): \(message)\n")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        let keepAlive = exchange.clientKeepAlive && exchange.requestComplete
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if exchange.head.method != .HEAD {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        self.endExchange()
        if !keepAlive { context.close(promise: nil) }
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

    // MARK: Keys

    private static func hashKey(_ key: Service.HashKey, head: HTTPRequestHead, client: String) -> UInt64? {
        switch key {
        case .clientIP:
            return StableHash.hash(client)
        case .path:
            return StableHash.hash(head.uri)
        case .header(let name):
            return head.headers.first(name: name).map(StableHash.hash)
        case .cookie(let name):
            for cookie in head.headers[canonicalForm: "cookie"] {
                for pair in cookie.split(separator: ";") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2, parts[0].trimmingSpaces == name {
                        return StableHash.hash(String(parts[1]))
                    }
                }
            }
            return nil
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
