import NIOCore
import NIOHTTP1

/// What an upstream connection tells the request it serves.
protocol UpstreamDelegate: AnyObject {
    /// A part of the backend's response arrived.
    func upstreamRead(_ part: HTTPClientResponsePart)
    /// The connection closed or failed while serving the request.
    func upstreamClosed()
    /// The connection can take more of the request body again, or cannot.
    func upstreamWritabilityChanged(_ writable: Bool)
}

/// A keep-alive HTTP/1.1 connection to one backend, owned by its event loop: idle in its pool, or
/// serving one request for its ``delegate``.
final class UpstreamConnection: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    let channel: any Channel
    /// The request being served, or `nil` while idle.
    weak var delegate: (any UpstreamDelegate)?
    /// Told when the connection closes (the pool forgets it).
    var onClose: ((UpstreamConnection) -> Void)?
    /// When it went idle, for the idle timeout.
    var idleSinceNanos: UInt64 = 0
    /// Whether the backend said it keeps the connection open after this response.
    private(set) var keepAlive = true

    init(channel: any Channel) {
        self.channel = channel
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if case .head(let head) = part {
            self.keepAlive = head.isKeepAlive
        }
        self.delegate?.upstreamRead(part)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.keepAlive = false
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamClosed()
        self.onClose?(self)
        self.onClose = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.delegate?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A protocol error or a reset: the connection is of no further use.
        self.keepAlive = false
        context.close(promise: nil)
    }

    /// Whether the connection can serve another request once this one ends.
    var isReusable: Bool { self.keepAlive && self.channel.isActive }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}
