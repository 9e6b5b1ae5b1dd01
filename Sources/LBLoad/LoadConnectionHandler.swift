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

    /// The request on the wire.
    private struct InFlight {
        var request: LoadRequest
        var sentNanos: UInt64
        var deadlineNanos: UInt64
        var firstByteNanos: UInt64?
    }

    private var inFlight: InFlight?
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

    /// Writes one request and returns when it was handed to the socket, or `nil` (and no completion will
    /// come) when the connection is closed already.
    func send(
        _ request: LoadRequest,
        bytes: ByteBuffer,
        isHEAD: Bool,
        timeoutNanos: UInt64
    ) -> UInt64? {
        precondition(self.inFlight == nil, "a load connection carries one request at a time")
        guard let context = self.context, !self.isBroken, context.channel.isActive else {
            self.isBroken = true
            return nil
        }
        let sent = NIODeadline.now().uptimeNanoseconds
        self.inFlight = InFlight(request: request, sentNanos: sent, deadlineNanos: sent &+ timeoutNanos)
        self.parser.reset(requestIsHEAD: isHEAD)
        context.writeAndFlush(self.wrapOutboundOut(bytes), promise: nil)
        return sent
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.inFlight != nil else { return }  // bytes after a timeout or a failure: ignored
        var buffer = self.unwrapInboundIn(data)
        if self.inFlight?.firstByteNanos == nil {
            self.inFlight?.firstByteNanos = NIODeadline.now().uptimeNanoseconds
        }
        if var pending = self.cumulation {
            self.cumulation = nil
            pending.writeBuffer(&buffer)
            buffer = pending
        }
        do {
            switch try self.parser.parse(&buffer) {
            case .needMoreData:
                if buffer.readableBytes > 0 {
                    self.cumulation = buffer
                }
            case .complete:
                self.complete(keepAlive: self.parser.head?.keepAlive ?? false, context: context)
            }
        } catch {
            self.fail(.badResponse)
        }
    }

    private func complete(keepAlive: Bool, context: ChannelHandlerContext) {
        guard let done = self.inFlight else { return }
        self.inFlight = nil
        if !keepAlive {
            self.isBroken = true
            context.close(promise: nil)
        }
        self.onEnd(
            Outcome(
                request: done.request,
                sentNanos: done.sentNanos,
                firstByteNanos: done.firstByteNanos,
                doneNanos: NIODeadline.now().uptimeNanoseconds,
                status: self.parser.head?.status,
                backend: self.parser.head?.backend,
                bytesIn: Int64(self.parser.bodyBytes),
                error: nil,
                reusable: keepAlive
            ),
            self
        )
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.inFlight != nil, self.parser.connectionClosed() {
            self.complete(keepAlive: false, context: context)  // a response delimited by the close
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
        self.onEnd(
            Outcome(
                request: failed.request,
                sentNanos: failed.sentNanos,
                firstByteNanos: failed.firstByteNanos,
                doneNanos: NIODeadline.now().uptimeNanoseconds,
                status: nil,
                backend: self.parser.head?.backend,
                bytesIn: Int64(self.parser.bodyBytes),
                error: error,
                reusable: false
            ),
            self
        )
        self.context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension LoadConnectionHandler: Sendable {}
