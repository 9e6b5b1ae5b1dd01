import LBCore
import NIOCore
import NIOHTTP1

/// One keep-alive connection of the load generator: sends a request, reads its response, reports the
/// outcome, and is ready for the next (no pipelining, as a browser or wrk does it).
///
/// It reads the wall of times a request needs: when its first byte went out (``send(_:)``), when the
/// response's first byte came back (the response head) and when it was complete. Every request ends
/// exactly once: with its response, with an error, or when the worker times it out.
final class LoadConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// How a request ended.
    struct Outcome {
        var firstByteNanos: UInt64?
        var doneNanos: UInt64
        var status: Int?
        var backend: String?
        var bytesIn: Int64
        var error: RequestFailure?
        /// Whether the connection can carry another request.
        var reusable: Bool
    }

    /// The request on the wire and where to report its end.
    private struct InFlight {
        var completion: (Outcome) -> Void
        var firstByteNanos: UInt64?
        var status: Int?
        var backend: String?
        var bytesIn: Int64 = 0
        var keepAlive = true
    }

    private var inFlight: InFlight?
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

    /// Writes one request and returns when its first byte was handed to the socket, or `nil` (and no
    /// completion will come) when the connection is closed already.
    func send(head: HTTPRequestHead, body: ByteBuffer?, completion: @escaping (Outcome) -> Void) -> UInt64? {
        precondition(self.inFlight == nil, "a load connection carries one request at a time")
        guard let context = self.context, !self.isBroken, context.channel.isActive else {
            self.isBroken = true
            return nil
        }
        self.inFlight = InFlight(completion: completion)
        let sent = NIODeadline.now().uptimeNanoseconds
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if let body, body.readableBytes > 0 {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        return sent
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.inFlight != nil else { return }  // a response after a timeout: ignored
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.inFlight?.firstByteNanos = NIODeadline.now().uptimeNanoseconds
            self.inFlight?.status = Int(head.status.code)
            self.inFlight?.backend = head.headers.first(name: "X-LBLab-Backend")
            self.inFlight?.keepAlive = head.isKeepAlive
        case .body(let chunk):
            self.inFlight?.bytesIn += Int64(chunk.readableBytes)
        case .end:
            guard let done = self.inFlight else { return }
            self.inFlight = nil
            if !done.keepAlive {
                self.isBroken = true
                context.close(promise: nil)
            }
            done.completion(
                Outcome(
                    firstByteNanos: done.firstByteNanos,
                    doneNanos: NIODeadline.now().uptimeNanoseconds,
                    status: done.status,
                    backend: done.backend,
                    bytesIn: done.bytesIn,
                    error: nil,
                    reusable: done.keepAlive
                )
            )
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error is HTTPParserError ? .badResponse : .connectionClosed)
        context.close(promise: nil)
    }

    /// Ends the request on the wire, if any, with `error`, and retires the connection.
    func fail(_ error: RequestFailure) {
        self.isBroken = true
        guard let failed = self.inFlight else { return }
        self.inFlight = nil
        failed.completion(
            Outcome(
                firstByteNanos: failed.firstByteNanos,
                doneNanos: NIODeadline.now().uptimeNanoseconds,
                status: nil,
                backend: failed.backend,
                bytesIn: failed.bytesIn,
                error: error,
                reusable: false
            )
        )
        self.context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension LoadConnectionHandler: Sendable {}
