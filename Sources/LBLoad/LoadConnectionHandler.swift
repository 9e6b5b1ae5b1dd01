import LBCore
import NIOCore

/// One keep-alive connection of the load generator: writes a request, reads its response, reports the
/// outcome, and is ready for the next (no pipelining, as a browser or wrk does it).
///
/// It takes the times a request needs: when it went out (``send(_:bytes:isHEAD:timeoutNanos:)``),
/// when the first byte of the response came back, and when the response was complete. Every request
/// ends exactly once: with its response, with an error, or when the worker times it out. Requests go
/// out as bytes the worker serialized and responses are framed by ``HTTPResponseParser``.
final class LoadConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How a request ended.
    struct Outcome {
        var request: LoadRequest
        var sentNanos: UInt64
        var firstByteNanos: UInt64?
        var doneNanos: UInt64
        var status: Int?
        var backend: String?
        var bytesIn: Int64
        var error: RequestFailure?
        /// Whether the connection can carry another request.
        var reusable: Bool
    }

    private var inFlight: RequestInFlight?
    /// Told of the end of every request, with this handler: one closure for the connection's life
    /// rather than one per request.
    private let onEnd: (Outcome, LoadConnectionHandler) -> Void
    /// The client a closed-loop connection sends for.
    let client: Int

    init(client: Int, onEnd: @escaping (Outcome, LoadConnectionHandler) -> Void) {
        self.client = client
        self.onEnd = onEnd
    }
    private var parser = HTTPResponseParser()
    /// Bytes of a response that did not complete in the read they came in.
    private var cumulation: ByteBuffer?
    private var context: ChannelHandlerContext?
    /// Set when the connection must not be reused (closed, failed, timed out).
    private(set) var isBroken = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Whether a request is on the wire.
    var isBusy: Bool { self.inFlight != nil }

    /// Fails the request on the wire with `timedOut` when its time is up at `now`.
    func expireIfOverdue(now: UInt64) {
        if let inFlight = self.inFlight, now >= inFlight.deadlineNanos {
            self.fail(.timedOut)
        }
    }

    /// The bytes of the request on the wire, kept for the next one: once the socket has taken them NIO
    /// lets go of the storage, and the next request is written into it without an allocation.
    private var requestBytes = ByteBuffer()

    /// Writes one request, sent at `sentNanos`, whose bytes `serialize` writes into the buffer it is
    /// given; returns `false` (and no completion will come) when the connection is broken already. A
    /// closed connection is broken before the next request comes: NIO tells ``channelInactive(context:)``
    /// as part of the close.
    func send(
        _ request: LoadRequest,
        sentNanos: UInt64,
        isHEAD: Bool,
        timeoutNanos: UInt64,
        serialize: (inout ByteBuffer) -> Void
    ) -> Bool {
        precondition(self.inFlight == nil, "a load connection carries one request at a time")
        guard let context = self.context, !self.isBroken else {
            self.isBroken = true
            return false
        }
        self.inFlight = RequestInFlight(request: request, sentNanos: sentNanos, deadlineNanos: sentNanos &+ timeoutNanos)
        self.parser.reset(requestIsHEAD: isHEAD)
        serialize(&self.requestBytes)
        context.writeAndFlush(self.wrapOutboundOut(self.requestBytes), promise: nil)
        return true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.inFlight != nil else { return }  // bytes after a timeout or a failure: ignored
        var buffer = self.unwrapInboundIn(data)
        // One clock read per read: a response that arrives whole is first byte and done at once.
        let now = NIODeadline.now().uptimeNanoseconds
        if self.inFlight?.firstByteNanos == nil {
            self.inFlight?.firstByteNanos = now
        }
        do {
            if try self.parser.parse(&buffer, after: &self.cumulation) == .complete {
                self.complete(keepAlive: self.parser.head?.keepAlive ?? false, at: now, context: context)
            }
        } catch {
            self.fail(.badResponse)
        }
    }

    private func complete(keepAlive: Bool, at doneNanos: UInt64, context: ChannelHandlerContext) {
        guard let done = self.inFlight else { return }
        self.inFlight = nil
        if !keepAlive {
            self.isBroken = true
            context.close(promise: nil)
        }
        self.onEnd(done.outcome(doneNanos: doneNanos, parser: self.parser, error: nil, reusable: keepAlive), self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.inFlight != nil, self.parser.connectionClosed() {
            // a response delimited by the close
            self.complete(keepAlive: false, at: NIODeadline.now().uptimeNanoseconds, context: context)
        } else {
            self.fail(.connectionClosed)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(.connectionClosed)
        context.close(promise: nil)
    }

    /// Ends the request on the wire, if any, with `error`, and retires the connection.
    func fail(_ error: RequestFailure) {
        self.isBroken = true
        guard let failed = self.inFlight else { return }
        self.inFlight = nil
        self.onEnd(failed.outcome(doneNanos: NIODeadline.now().uptimeNanoseconds, parser: self.parser, error: error, reusable: false), self)
        self.context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension LoadConnectionHandler: Sendable {}

/// A request on the wire of a load connection (``LoadConnectionHandler``'s or ``ClosedLoopEngine``'s).
struct RequestInFlight {
    var request: LoadRequest
    var sentNanos: UInt64
    var deadlineNanos: UInt64
    var firstByteNanos: UInt64?

    /// How it ended at `doneNanos`: with the response `parser` read, or with `error` (then without a
    /// status, but with the backend and the body bytes the parser saw).
    func outcome(doneNanos: UInt64, parser: HTTPResponseParser, error: RequestFailure?, reusable: Bool) -> LoadConnectionHandler.Outcome {
        LoadConnectionHandler.Outcome(
            request: self.request,
            sentNanos: self.sentNanos,
            firstByteNanos: self.firstByteNanos,
            doneNanos: doneNanos,
            status: error == nil ? parser.head?.status : nil,
            backend: parser.head?.backend,
            bytesIn: Int64(parser.bodyBytes),
            error: error,
            reusable: reusable
        )
    }
}
