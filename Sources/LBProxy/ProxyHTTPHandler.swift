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
final class ProxyHTTPHandler: ChannelInboundHandler, UpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Request body bytes kept to resend on a retry; a longer body is not retried once sent.
    static let replayLimit = 64 * 1024

    let loop: LoopContext
    var context: ChannelHandlerContext?
    var peer = ""
    var peerIsTrusted = false
    var peerKey: UInt64 = 0
    /// Bytes read and not yet consumed: a head not all arrived, or pipelined requests waiting.
    var inbound: ByteBuffer?
    var requestFramer = HTTPBodyFramer(.none)
    var exchange: ProxyExchange?
    /// Numbers attempts on this connection, so a late connect does not serve a later one.
    var attempts = 0
    /// Whether ``processInbound()`` is running (it is not entered twice).
    var processing = false
    /// The connection closes once the current answer is written; nothing more is read.
    var closing = false
    /// The response's head, with as much of a small body as came with it, not yet written: one write
    /// for both instead of two.
    var pendingOut: ByteBuffer?
    /// Whether bytes written to the client wait for the end of the event loop's tick.
    var flushPending = false
    /// Reads held back (the channel's `autoRead` off) while the backend cannot take more, or a
    /// pipelined request waits.
    var readsPaused = false
    /// When the connection, idle between requests, is closed.
    var idleDeadline = UInt64.max
    var timer: Scheduled<Void>?
    var timerDeadline = UInt64.max

    init(loop: LoopContext) {
        self.loop = loop
    }

    var service: ServiceRuntime? {
        self.exchange.map { self.loop.services[$0.service].runtime }
    }

    // MARK: Client side

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.peer = context.channel.remoteAddress?.ipAddress ?? "0.0.0.0"
        // A connection keeps the trust it got here through a reload, as the requests of a connection
        // to nginx's old worker do.
        self.loop.refreshIfReloaded()
        self.peerIsTrusted = self.loop.forwarded.isTrusted(self.peer)
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
    func processInbound() {
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
                    self.writeError(error.isTooLarge ? .requestHeaderFieldsTooLarge : .badRequest, error.reason, isHEAD: false, keepAlive: false)
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
        }
        if self.inbound?.readableBytes == 0 { self.inbound = nil }
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

    func start(_ head: HTTPHead) {
        if head.methodIs("CONNECT") {
            // A tunnel is not a request to forward: refused, and the connection closed, since the
            // client may already be sending what it meant for the tunnel.
            self.writeError(.notImplemented, "CONNECT (the proxy forwards requests to its services; it opens no tunnels)", isHEAD: false, keepAlive: false)
            self.closeAfterAnswer()
            return
        }
        let runtime = self.loop.runtime
        let fields = self.loop.fields
        self.loop.refreshIfReloaded()
        let serviceIndex: Int
        if let only = self.loop.router.onlyService {
            serviceIndex = only
        } else if let routed = head.bytes.withUnsafeReadableBytes({ bytes in
            let start = head.target.lowerBound
            return self.loop.router.route(
                host: head.host.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) },
                target: UnsafeRawBufferPointer(rebasing: bytes[head.target]),
                authority: head.authority.map { ($0.lowerBound - start)..<($0.upperBound - start) }
            )
        }) {
            serviceIndex = routed
        } else {
            // The body, if any, is not read: the connection closes after the answer.
            let target = head.string(head.target)
            let host = head.host.map(head.string) ?? "(none)"
            let what = head.authority == nil ? "host \(host) and path \(target)" : target
            self.writeError(.notFound, "no service for \(what)", isHEAD: head.methodIs("HEAD"), keepAlive: false)
            self.closeAfterAnswer()
            return
        }
        let clientKey: UInt64
        var clientIP = self.peer
        if self.peerIsTrusted && head.hasForwardedFor {
            clientIP = self.loop.forwarded.clientAddress(peer: self.peer, peerIsTrusted: true, head: head, fields: fields)
            clientKey = StableHash.hash(clientIP)
        } else {
            clientKey = self.peerKey
        }
        let generatedID = self.loop.newRequestID()
        let exchange = self.loop.takeExchange()
        exchange.head.clear(minimumCapacity: head.bytes.readableBytes + 160 + self.peer.utf8.count)
        self.loop.forwarded.writeRequestHead(
            head,
            fields: fields,
            peer: self.peer,
            peerIsTrusted: self.peerIsTrusted,
            requestID: generatedID,
            serverAuthority: head.host == nil ? self.localAuthority() : nil,
            into: &exchange.head
        )
        let now = self.loop.eventLoop.now.uptimeNanoseconds
        let loopService = self.loop.services[serviceIndex]
        loopService.refreshIfChanged()
        let pick = PickRequest(
            now: Instant(nanoseconds: Int64(now)),
            clientKey: clientKey,
            hashKey: loopService.tunables.hashKey.hash(of: head, fields: fields, clientKey: clientKey)
        )
        exchange.begin(
            service: serviceIndex,
            method: Self.methodName(head),
            clientKeepAlive: head.keepAlive,
            clientIsHTTP10: head.minorVersion == 0,
            upgrade: head.upgrade != nil,
            pick: pick,
            deadline: now &+ UInt64(max(1, loopService.tunables.timeouts.request.nanoseconds))
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
        self.loop.services[serviceIndex].retryBudget.requestStarted()
        self.armTimer(exchange.deadline)
        self.attempt(now: now)
    }

    /// The address the client reached, as a URI authority (`127.0.0.1:8080`, `[::1]:8080`): what an
    /// HTTP/1.0 request without `Host` was for (RFC 9112 §3.3).
    func localAuthority() -> String {
        guard let local = self.context?.channel.localAddress, let ip = local.ipAddress, let port = local.port else { return "" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    /// The request id at `range` of `head` as a number, if it is one.
    static func number(_ head: HTTPHead, _ range: Range<Int>) -> Int64? {
        head.bytes.withUnsafeReadableBytes { HTTPBytes.decimal(UnsafeRawBufferPointer(rebasing: $0[range])) }.map(Int64.init)
    }

    static let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"]

    /// The request's method; the common ones without allocating a string.
    static func methodName(_ head: HTTPHead) -> String {
        head.bytes.withUnsafeReadableBytes { bytes in
            let method = UnsafeRawBufferPointer(rebasing: bytes[head.method])
            for name in Self.methods where name.utf8.elementsEqual(method) {
                return name
            }
            return String(decoding: method, as: UTF8.self)
        }
    }

    func requestBody(_ buffer: ByteBuffer) {
        guard let exchange = self.exchange else { return }
        if exchange.tunnel { exchange.lastActivityNanos = self.loop.eventLoop.now.uptimeNanoseconds }
        if exchange.bodyReplayable || exchange.upstream == nil {
            exchange.body.append(buffer)
            exchange.bodyBytes += buffer.readableBytes
            if exchange.bodyBytes > Self.replayLimit { exchange.bodyReplayable = false }
        }
        if let upstream = exchange.upstream {
            if upstream.sendBody(buffer) { self.loop.flushAtEndOfTick(upstream) }
            if !exchange.bodyReplayable { exchange.body.removeAll() }
            if !upstream.channel.isWritable { self.pauseReads() }
        } else if exchange.bodyBytes > Self.replayLimit {
            // Still connecting and the buffer is full: wait for the connection.
            self.pauseReads()
        }
    }

    func requestEnd() {
        guard let exchange = self.exchange else { return }
        exchange.requestComplete = true
        // Its last bytes went with the body's (``requestBody(_:)``), flushed at the end of the tick.
        if exchange.upstream != nil {
            exchange.requestSent = true
        }
    }

    /// The request's body cannot be framed: a 400 if nothing of the response went out, else the
    /// connection closes.
    func requestMalformed(_ reason: String) {
        guard let exchange = self.exchange else { return }
        self.abandonUpstream()
        if exchange.responseStarted {
            self.endExchange(close: true)
        } else {
            self.respondError(.badRequest, reason, keepAlive: false)
        }
    }

    // MARK: Reads

    // Pausing turns the channel's `autoRead` off rather than holding back the `read` events that pass
    // through the pipeline: the handler then stays out of the outbound path, which every read cycle of
    // every connection walks.

    func pauseReads() {
        guard !self.readsPaused else { return }
        self.readsPaused = true
        self.context?.channel.setAutoRead(false)
    }

    func resumeReads() {
        guard self.readsPaused else { return }
        self.readsPaused = false
        self.context?.channel.setAutoRead(true)
    }
}

@available(*, unavailable)
extension ProxyHTTPHandler: Sendable {}
