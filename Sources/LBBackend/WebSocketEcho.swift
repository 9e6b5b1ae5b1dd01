import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The synthetic backend's WebSocket (``BackendConfiguration/webSocketPath``): SwiftNIO's upgrader
/// checks the handshake and answers it (`Sec-WebSocket-Accept`, and `X-LBLab-Backend` as on every
/// response); after it, every text or binary message comes back as it was sent, a ping gets its pong,
/// and a close is answered with a close before the connection closes.
final class WebSocketEcho: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// The largest frame taken: a message up to 16 MiB in one frame.
    static let maxFrameSize = 1 << 24

    /// An upgrader that switches requests for `path` (its query aside) and names `backend` in its 101.
    static func upgrader(path: String, backend: String) -> NIOWebSocketServerUpgrader {
        NIOWebSocketServerUpgrader(
            maxFrameSize: Self.maxFrameSize,
            shouldUpgrade: { channel, head in
                let target = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? head.uri
                return channel.eventLoop.makeSucceededFuture(target == path ? HTTPHeaders([("X-LBLab-Backend", backend)]) : nil)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(WebSocketEcho())
                }
            }
        )
    }

    /// Whether a close was sent: nothing more goes out.
    private var closing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        guard !self.closing else { return }
        switch frame.opcode {
        case .text, .binary, .continuation:
            let echo = WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(echo), promise: nil)
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            self.closing = true
            let reply = WebSocketFrame(fin: true, opcode: .connectionClose, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(reply)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            break
        }
    }
}

@available(*, unavailable)
extension WebSocketEcho: Sendable {}
