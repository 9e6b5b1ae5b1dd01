import LBConfig
import LBCore
import LBHTTP
import NIOCore

/// How a request ends (answered, failed, abandoned), the timeouts that end it, and its record.
extension ProxyHTTPHandler {
    // MARK: Ending

    func finishExchange() {
        guard let exchange = self.exchange, let backend = exchange.backend, let upstream = exchange.upstream else { return }
        let now = self.loop.eventLoop.now.uptimeNanoseconds
        backend.state.requestFinished()
        backend.limiter.release()
        // A tunnel's handshake was learned when it was answered; its life is no latency.
        if !exchange.tunnel { self.learn(exchange, backend: backend, now: now) }
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
        self.endExchange(close: !exchange.keepClient || !exchange.requestComplete, now: now)
    }

    /// Tells the service's picker, the backend's metrics and outlier detection how the attempt on
    /// `backend` was answered, at `now`.
    func learn(_ exchange: ProxyExchange, backend: LoopBackend, now: UInt64) {
        let latency = Duration.nanoseconds(Int64(now &- exchange.attemptStartNanos))
        let service = self.loop.services[exchange.service]
        service.finished(backend.state, latency: latency, now: Instant(nanoseconds: Int64(now)))
        backend.metrics.record(status: exchange.status, latency: latency)
        if exchange.status >= 500 {
            service.runtime.outlierFailed(backend.runtime, eventLoop: self.loop.eventLoop)
        } else {
            service.runtime.outlierSucceeded(backend)
        }
    }

    /// Drops the current upstream connection (closing it) and the backend's in-flight count.
    func abandonUpstream() {
        guard let exchange = self.exchange else { return }
        if let upstream = exchange.upstream {
            upstream.delegate = nil
            upstream.channel.close(promise: nil)
        }
        if let backend = exchange.backend {
            backend.state.requestFinished()
            backend.limiter.release()
        }
        if let (backend, id) = exchange.waiting {
            backend.limiter.cancel(id)
            exchange.waiting = nil
            exchange.queueDeadline = .max
        }
        self.exchange?.upstream = nil
        self.exchange?.backend = nil
    }

    /// Ends the current exchange: its record, its retry budget, the connection idle again. Then the
    /// next pipelined request is served, or with `close` the connection closes after the answer and
    /// whatever the client sent after this request is dropped unread.
    func endExchange(close: Bool = false, now: UInt64? = nil) {
        guard let exchange = self.exchange else { return }
        if close {
            self.closing = true
            self.inbound = nil
        }
        if let records = self.loop.records { self.record(exchange, into: records) }
        if exchange.isRetry { self.loop.services[exchange.service].retryBudget.retryFinished() }
        self.loop.services[exchange.service].retryBudget.requestFinished()
        self.exchange = nil
        exchange.clear()
        self.loop.returnExchange(exchange)
        self.becomeIdle(now: now)
        if close {
            // A close fails writes not yet flushed: the answer goes out first.
            self.flushIfPending()
            self.context?.close(promise: nil)
        } else if !self.closing {
            // Serve the next pipelined request, if its bytes are here.
            self.resumeReads()
            self.processInbound()
        }
    }

    /// Answers the current request with `status` and a one-line body, and ends it.
    func respondError(_ status: HTTPStatus, _ message: String, keepAlive wanted: Bool = true) {
        guard let exchange = self.exchange else { return }
        let keepAlive = wanted && exchange.clientKeepAlive && exchange.requestComplete
        self.service?.metrics.proxyAnswered(status.code)
        exchange.clientStatus = status.code
        self.writeError(status, message, isHEAD: exchange.isHEAD, keepAlive: keepAlive, http10: exchange.clientIsHTTP10)
        // After the answer is written: ending may start the next pipelined request.
        self.endExchange(close: !keepAlive)
    }

    /// Writes a response of `status` whose body is one line saying `message`, with `Connection: close`
    /// unless `keepAlive`.
    func writeError(_ status: HTTPStatus, _ message: String, isHEAD: Bool, keepAlive: Bool, http10: Bool = false) {
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
    func closeAfterAnswer() {
        self.closing = true
        self.inbound = nil
        self.flushIfPending()
        self.context?.close(promise: nil)
    }

    // MARK: Timeouts

    /// The connection waits for its next request from `now` on.
    func becomeIdle(now: UInt64? = nil) {
        let idle = self.loop.runtime.clientIdleNanos
        self.idleDeadline = (now ?? self.loop.eventLoop.now.uptimeNanoseconds) &+ idle
        self.armTimer(self.idleDeadline)
    }

    /// Makes the timer fire no later than `deadline`.
    func armTimer(_ deadline: UInt64) {
        guard deadline < self.timerDeadline, self.context != nil else { return }
        self.timer?.cancel()
        self.timerDeadline = deadline
        self.timer = self.loop.eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(deadline)) {
            self.timerFired()
        }
    }

    func timerFired() {
        self.timer = nil
        self.timerDeadline = .max
        guard self.context != nil else { return }
        let now = self.loop.eventLoop.now.uptimeNanoseconds
        if let exchange = self.exchange {
            if exchange.tunnel {
                let idleEnd = exchange.lastActivityNanos &+ exchange.tunnelIdleNanos
                guard idleEnd > now else {
                    // Silent both ways for the tunnel timeout: both sides close.
                    self.abandonUpstream()
                    self.endExchange(close: true)
                    return
                }
                exchange.deadline = idleEnd
            } else if exchange.deadline <= now {
                self.requestTimedOut()
            } else if exchange.queueDeadline <= now, let (backend, id) = exchange.waiting {
                exchange.queueDeadline = .max
                // `false`: a place was granted meanwhile and is on its way to this loop; it proceeds then.
                if backend.limiter.timedOut(id) {
                    exchange.waiting = nil
                    let limit = GoDuration.format(backend.limiter.limits.queueTimeout)
                    self.respondError(.serviceUnavailable, "waited \(limit) in the queue of \(backend.name) for a place")
                }
            } else if exchange.headerDeadline <= now {
                let limit = GoDuration.format(self.loop.services[exchange.service].tunables.timeouts.responseHeader)
                self.attemptFailed(.responseTimedOut, detail: "no response header from \(self.backendName) within \(limit)")
            }
        } else if self.idleDeadline <= now {
            if let partial = self.inbound, partial.readableBytes > 0 {
                // Part of a head came and the rest did not: the client is told why, as HAProxy does.
                let limit = GoDuration.format(.nanoseconds(Int64(self.loop.runtime.clientIdleNanos)))
                self.writeError(.requestTimeout, "the request head did not arrive in full within the client-idle timeout (\(limit))", isHEAD: false, keepAlive: false)
            }
            self.closeAfterAnswer()
            return
        }
        if let exchange = self.exchange {
            self.armTimer(min(exchange.deadline, exchange.headerDeadline, exchange.queueDeadline))
        } else if !self.closing {
            self.armTimer(self.idleDeadline)
        }
    }

    func requestTimedOut() {
        guard let exchange = self.exchange else { return }
        self.abandonUpstream()
        if exchange.responseStarted {
            // Part of the response went out: all the client can be told is the connection closing.
            self.endExchange(close: true)
        } else {
            let limit = GoDuration.format(self.loop.services[exchange.service].tunables.timeouts.request)
            self.respondError(.gatewayTimeout, "no response within the request timeout (\(limit))")
        }
    }

    // MARK: Records

    /// The request's row and access-log line.
    func record(_ exchange: ProxyExchange, into records: LoopRecords) {
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
            let service = self.loop.services[exchange.service].runtime.settings.name
            var line = #"{"t_us":\#(row.receivedMicros),"request_id":\#(row.requestID),"client":\#(exchange.clientIP.jsonQuoted)"#
            line += #","method":\#(exchange.method.jsonQuoted),"target":\#((exchange.target ?? "").jsonQuoted),"service":\#(service.jsonQuoted)"#
            line += #","backend":\#(backend.map { $0.name.jsonQuoted } ?? "null"),"status":\#(row.status.map(String.init) ?? "null")"#
            line += #","attempts":\#(row.attempts),"resent":\#(exchange.resent),"duration_us":\#(recorder.micros(now) - row.receivedMicros)}"#
            return line
        }
    }
}
