import LBHTTP
import NIOCore

/// What an upstream connection tells the request it serves.
protocol UpstreamDelegate: AnyObject {
    /// An interim (1xx) response head arrived; the final one follows.
    func upstreamInterim(_ head: HTTPHead)
    /// The final response head arrived, with its header lines.
    func upstreamHead(_ head: HTTPHead, fields: [HTTPHeaderField])
    /// Bytes of the response body, framing included, as they are to be passed on.
    func upstreamBody(_ bytes: ByteBuffer)
    /// The response is complete.
    func upstreamEnd()
    /// A read from the backend ended: what was written to the client can be flushed.
    func upstreamReadComplete()
    /// The connection closed or failed before the response was complete, or sent what is not HTTP
    /// (`malformed` says what).
    func upstreamClosed(malformed: HTTPMalformed?)
    /// The connection can take more of the request body again, or cannot.
    func upstreamWritabilityChanged(_ writable: Bool)
}

/// A keep-alive HTTP/1.1 connection to one backend, owned by its event loop: idle in its pool, or
/// serving one request for its ``delegate``. It reads the response's head and finds where its body
/// ends (``HTTPHead``, ``HTTPBodyFramer``); the body's bytes go to the delegate as they arrive.
final class UpstreamConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let channel: any Channel
    /// The pool the connection belongs to, one per backend and event loop: the tick-end flush writes
    /// the requests of one backend together (``LoopContext``).
    let pool: ObjectIdentifier
    /// The connection's place in its pipeline, while the handler is in it.
    private var context: ChannelHandlerContext?
    /// The request being served, or `nil` while idle. A strong reference, set for one exchange and
    /// cleared when it ends (the pool takes the connection back, the request abandons it, or it closes):
    /// a weak one gave every client handler a side table, which made each of the several retains and
    /// releases of the handler per request take the runtime's slow path.
    var delegate: (any UpstreamDelegate)?
    /// Told when the connection closes (the pool forgets it).
    var onClose: ((UpstreamConnection) -> Void)?
    /// When it went idle, for the idle timeout.
    var idleSinceNanos: UInt64 = 0
    /// Whether the backend said it keeps the connection open after this response.
    private(set) var keepAlive = true
    /// Whether a response is awaited (a request was sent and its response has not ended).
    private var awaiting = false
    private var requestIsHEAD = false
    /// Whether the request asked to switch protocols, which makes a 101 its final response.
    private var upgradeAsked = false
    /// Responses the connection has carried to their end.
    private var responsesServed = 0
    /// Whether any byte of the awaited response has come: a reused connection (``isReused``) that
    /// closes with nothing may have been closed by the backend while idle, as the request went out.
    private(set) var receivedAny = false
    /// Bytes of a head that has not all arrived.
    private var pending: ByteBuffer?
    /// The body's framer, once the final head has been read.
    private var framer: HTTPBodyFramer?
    private var fields: [HTTPHeaderField] = []

    init(channel: any Channel, pool: ObjectIdentifier) {
        self.channel = channel
        self.pool = pool
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Writes a request's head and the parts of its body at hand, to be flushed at the end of the event
    /// loop's tick (``LoopContext``), which the caller arranges when this returns `true`. They go from
    /// the handler's own place in the pipeline (it is the last one), which spares the channel's walk
    /// from the pipeline's tail and its check of the calling thread.
    func send(_ head: ByteBuffer, body: [ByteBuffer]) -> Bool {
        // Out of its pipeline, the channel has closed: a write would only fail, and the attempt ends by
        // `channelInactive` or, at the latest, by the response-header timeout.
        guard let context = self.context else { return false }
        context.write(NIOAny(head), promise: nil)
        for part in body { context.write(NIOAny(part), promise: nil) }
        return self.awaitFlush()
    }

    /// Writes a part of the request's body that came after its head, like ``send(_:body:)``.
    func sendBody(_ part: ByteBuffer) -> Bool {
        guard let context = self.context else { return false }
        context.write(NIOAny(part), promise: nil)
        return self.awaitFlush()
    }

    /// Notes that written bytes wait for the flush; `true` when they did not already.
    private func awaitFlush() -> Bool {
        guard !self.flushPending else { return false }
        self.flushPending = true
        return true
    }

    /// Whether written bytes wait for the end of the event loop's tick (``LoopContext``).
    private var flushPending = false

    /// Flushes what was written this tick, if the connection is still open.
    func flushIfPending() {
        guard self.flushPending else { return }
        self.flushPending = false
        self.context?.flush()
    }

    /// Expects the response to a request about to be written; `upgrade` when the request asks to
    /// switch protocols.
    func expectResponse(toHEAD isHEAD: Bool, upgrade: Bool) {
        self.awaiting = true
        self.receivedAny = false
        self.requestIsHEAD = isHEAD
        self.upgradeAsked = upgrade
        self.framer = nil
        self.pending = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        guard self.awaiting else {
            // Bytes nobody asked for: the connection cannot be trusted with another request.
            self.fail(context: context)
            return
        }
        self.receivedAny = true
        if var pending = self.pending {
            self.pending = nil
            pending.writeBuffer(&bytes)
            bytes = pending
        }
        do {
            try self.read(&bytes)
        } catch {
            self.fail(context: context, malformed: error)
        }
    }

    private func read(_ bytes: inout ByteBuffer) throws(HTTPMalformed) {
        while self.awaiting {
            if var framer = self.framer {
                let taken = try bytes.withUnsafeReadableBytes { pointer throws(HTTPMalformed) in try framer.scan(pointer) }
                self.framer = framer
                if taken > 0 { self.delegate?.upstreamBody(bytes.readSlice(length: taken)!) }
                guard framer.isComplete else { return }
                self.complete(leftover: bytes.readableBytes > 0)
            } else {
                guard let head = try HTTPHead.readResponse(from: &bytes, requestIsHEAD: self.requestIsHEAD, fields: &self.fields) else {
                    if bytes.readableBytes > 0 { self.pending = bytes }
                    return
                }
                if head.status == 101 {
                    guard self.upgradeAsked else { throw HTTPMalformed("a protocol switch that was not asked for") }
                    guard head.upgrade != nil else { throw HTTPMalformed("a 101 without Upgrade and Connection: upgrade") }
                    // The connection carries the new protocol from here until either side closes: its
                    // bytes pass on as a body that runs until the close, and it is never reused.
                    self.keepAlive = false
                    self.framer = HTTPBodyFramer(.untilClose)
                    self.delegate?.upstreamHead(head, fields: self.fields)
                    continue
                }
                if head.status < 200 {
                    self.delegate?.upstreamInterim(head)
                    continue
                }
                // A backend that answered a switch's request without switching may still have taken
                // the connection for switched (a parser that saw `Upgrade` stops reading HTTP on it, as
                // SwiftNIO's llhttp-based decoder does): it is not reused.
                self.keepAlive = head.keepAlive && !self.upgradeAsked
                let framer = HTTPBodyFramer(head.framing)
                self.framer = framer
                self.delegate?.upstreamHead(head, fields: self.fields)
                if framer.isComplete, self.awaiting { self.complete(leftover: bytes.readableBytes > 0) }
            }
        }
        if bytes.readableBytes > 0 {
            // More than the response: the backend is out of step, so the connection is not reused.
            self.keepAlive = false
        }
    }

    private func complete(leftover: Bool) {
        if leftover { self.keepAlive = false }
        self.awaiting = false
        self.responsesServed += 1
        self.framer = nil
        let delegate = self.delegate
        delegate?.upstreamEnd()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.delegate?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    private func fail(context: ChannelHandlerContext, malformed: HTTPMalformed? = nil) {
        self.keepAlive = false
        self.awaiting = false
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamClosed(malformed: malformed)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.keepAlive = false
        if self.awaiting, self.framer?.runsUntilClose == true {
            // A body delimited by the close has ended.
            self.complete(leftover: false)
        }
        let delegate = self.delegate
        self.delegate = nil
        if self.awaiting {
            self.awaiting = false
            delegate?.upstreamClosed(malformed: nil)
        }
        self.onClose?(self)
        self.onClose = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.delegate?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or another I/O error: the connection is of no further use.
        self.fail(context: context)
    }

    /// Whether the request in flight is not the connection's first (the count moves only when a
    /// response ends).
    var isReused: Bool { self.responsesServed > 0 }

    /// Whether the connection can serve another request once this one ends. A closed one cannot:
    /// NIO tells ``channelInactive(context:)`` as part of any close, which clears ``keepAlive``.
    var isReusable: Bool { self.keepAlive && !self.awaiting }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}

extension Channel {
    /// Sets `autoRead` from the channel's own event loop.
    func setAutoRead(_ on: Bool) {
        _ = try? self.syncOptions?.setOption(.autoRead, value: on)
    }
}
