import DequeModule
import LBCore
import NIOCore
import NIOWebSocket

/// One WebSocket of the load generator, after its handshake: every request is a message, and it ends
/// when the target echoes it back (as `lbctl backend -websocket` does).
///
/// Messages may be pipelined: the socket carries them in order, so their echoes come back in the
/// same order, and the oldest message on the wire is the one the next echo completes. An echo that is
/// not the message it completes is a bad response. A message that times out fails with every message
/// behind it, and the connection closes: on an ordered stream, nothing behind a lost echo can be told
/// apart from it.
final class WebSocketLoadHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// A message on the wire.
    private struct InFlight {
        var request: LoadRequest
        var sentNanos: UInt64
        var deadlineNanos: UInt64
        /// What was sent, to compare the echo with.
        var payload: ByteBuffer
    }

    /// The client the WebSocket was opened for (its `X-Forwarded-For` went with the handshake).
    let client: Int
    /// The backend named in the handshake's `X-LBLab-Backend`: every message of the connection goes to it.
    let backend: String?
    private let onEnd: (LoadConnectionHandler.Outcome, WebSocketLoadHandler) -> Void
    private var inFlight = Deque<InFlight>()
    /// The frames of a message that came in fragments, until its last.
    private var fragments: ByteBuffer?
    private var context: ChannelHandlerContext?
    private var maskKeys: SeededGenerator
    /// Set once the connection cannot carry another message (closed, failed, timed out).
    private(set) var isBroken = false
    /// Messages whose echo came back.
    private(set) var echoes = 0

    init(client: Int, backend: String?, maskKeys: SeededGenerator, onEnd: @escaping (LoadConnectionHandler.Outcome, WebSocketLoadHandler) -> Void) {
        self.client = client
        self.backend = backend
        self.maskKeys = maskKeys
        self.onEnd = onEnd
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Messages on the wire.
    var inFlightCount: Int { self.inFlight.count }

    /// Sends `payload` as one masked text message for `request`; `false` (and no end will come) when the
    /// connection is broken already.
    func send(_ request: LoadRequest, payload: ByteBuffer, sentNanos: UInt64, timeoutNanos: UInt64) -> Bool {
        guard let context = self.context, !self.isBroken else {
            self.isBroken = true
            return false
        }
        self.inFlight.append(InFlight(request: request, sentNanos: sentNanos, deadlineNanos: sentNanos &+ timeoutNanos, payload: payload))
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(using: &self.maskKeys), data: payload)
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
        return true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            var data = frame.unmaskedData
            if var pending = self.fragments {
                pending.writeBuffer(&data)
                data = pending
                self.fragments = nil
            }
            guard frame.fin else {
                self.fragments = data
                return
            }
            self.echoed(data, at: NIODeadline.now().uptimeNanoseconds)
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(using: &self.maskKeys), data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            // The target closes: what is on the wire will not come back.
            self.fail(.connectionClosed)
        default:
            break
        }
    }

    /// An echo came in whole at `now`: it completes the oldest message on the wire.
    private func echoed(_ data: ByteBuffer, at now: UInt64) {
        guard let done = self.inFlight.popFirst() else {
            // An echo of nothing sent: the target does not echo.
            self.fail(.badResponse)
            return
        }
        guard data == done.payload else {
            self.inFlight.prepend(done)
            self.fail(.badResponse)
            return
        }
        self.echoes += 1
        self.onEnd(
            LoadConnectionHandler.Outcome(
                request: done.request,
                sentNanos: done.sentNanos,
                firstByteNanos: now,
                doneNanos: now,
                status: 101,
                backend: self.backend,
                bytesIn: Int64(data.readableBytes),
                error: nil,
                reusable: true
            ),
            self
        )
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIO's frame decoder refuses a malformed frame; anything else is the connection's.
        self.fail(error is NIOWebSocketError ? .badResponse : .connectionClosed)
    }

    /// Fails every message on the wire with `timedOut` when the oldest is due at `now`.
    func expireIfOverdue(now: UInt64) {
        if let oldest = self.inFlight.first, now >= oldest.deadlineNanos {
            self.fail(.timedOut)
        }
    }

    /// Ends every message on the wire with `error`, and closes the connection.
    func fail(_ error: RequestFailure) {
        self.isBroken = true
        let now = NIODeadline.now().uptimeNanoseconds
        while let failed = self.inFlight.popFirst() {
            self.onEnd(
                LoadConnectionHandler.Outcome(
                    request: failed.request,
                    sentNanos: failed.sentNanos,
                    firstByteNanos: nil,
                    doneNanos: now,
                    status: nil,
                    backend: self.backend,
                    bytesIn: 0,
                    error: error,
                    reusable: false
                ),
                self
            )
        }
        self.context?.close(promise: nil)
    }

    /// Ends the WebSocket as the protocol asks: a close frame (1000, normal closure), then the
    /// connection. The frame goes out in the flush when the socket takes it at once (as it does unless
    /// the target stopped reading); the close does not wait for it, so that it cannot hang.
    func close() {
        self.isBroken = true
        guard let context = self.context else { return }
        var reason = context.channel.allocator.buffer(capacity: 2)
        reason.write(webSocketErrorCode: .normalClosure)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(using: &self.maskKeys), data: reason)
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension WebSocketLoadHandler: Sendable {}
