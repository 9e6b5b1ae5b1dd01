import LBConfig
import LBCore
import NIOCore
import NIOPosix

/// Serves one client connection of a TCP listener: picks a backend of the listener's service for the
/// whole connection (hash algorithms by the client's address), connects to it, and relays bytes both
/// ways with backpressure until either side closes, then closes the other.
///
/// A backend that refuses the connection or does not accept it within the connect timeout is
/// replaced by another, within the service's attempt limit; the client's first bytes wait meanwhile.
/// The connection counts as one request in flight to its backend for its whole life (what
/// least-connections balances).
final class TCPProxyHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let loop: LoopContext
    private let serviceIndex: Int
    private var context: ChannelHandlerContext?
    /// Bytes from the client before the backend's connection was made.
    private var early: [ByteBuffer] = []
    private var upstream: (any Channel)?
    private var backend: LoopBackend?
    private var tried: [ObjectIdentifier] = []
    private var attempts = 0
    private var closed = false

    init(loop: LoopContext, service: Int) {
        self.loop = loop
        self.serviceIndex = service
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // A listener a reload added may forward to a service this loop has not taken up yet.
        self.loop.refreshIfReloaded()
    }

    func channelActive(context: ChannelHandlerContext) {
        self.connect()
        context.fireChannelActive()
    }

    private func connect() {
        guard let context = self.context, !self.closed else { return }
        let service = self.loop.services[self.serviceIndex]
        service.refreshIfChanged()
        let settings = service.tunables
        self.attempts += 1
        let peer = context.channel.remoteAddress?.ipAddress ?? "0.0.0.0"
        let now = NIODeadline.now().uptimeNanoseconds
        let key = StableHash.hash(peer)
        let request = PickRequest(now: Instant(nanoseconds: Int64(now)), clientKey: key, hashKey: key)
        guard self.attempts <= settings.retries.maxRetries + 1, let backend = service.pick(request, excluded: self.tried) else {
            self.close()
            return
        }
        self.tried.append(ObjectIdentifier(backend.state))
        backend.state.requestStarted()
        self.backend = backend
        let client = NIOLoopBound(self, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .connectTimeout(.nanoseconds(max(1, settings.timeouts.connect.nanoseconds)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TCPUpstreamHandler(client: client.value))
                }
            }
            .connect(host: backend.spec.address.host, port: backend.spec.address.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    guard !self.closed else {
                        channel.close(promise: nil)
                        return
                    }
                    self.upstream = channel
                    for part in self.early { channel.write(part, promise: nil) }
                    self.early.removeAll()
                    channel.flush()
                    if let context = self.context, !context.channel.isWritable { channel.setAutoRead(false) }
                case .failure:
                    backend.state.requestFinished()
                    self.backend = nil
                    self.loop.services[self.serviceIndex].runtime.outlierFailed(backend.runtime, eventLoop: self.loop.eventLoop)
                    self.connect()
                }
            }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        if let upstream = self.upstream {
            upstream.write(bytes, promise: nil)
            if !upstream.isWritable { context.channel.setAutoRead(false) }
        } else {
            self.early.append(bytes)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.upstream?.flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client reads slower than the backend sends: hold the backend's reads meanwhile.
        self.upstream?.setAutoRead(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.close()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.close()
    }

    // MARK: From the backend

    fileprivate func upstreamRead(_ bytes: ByteBuffer) {
        guard let context = self.context else { return }
        context.write(self.wrapOutboundOut(bytes), promise: nil)
    }

    fileprivate func upstreamReadComplete() {
        self.context?.flush()
    }

    fileprivate func upstreamWritabilityChanged(_ writable: Bool) {
        self.context?.channel.setAutoRead(writable)
    }

    /// Either side ended: both close, and the backend's place is given back once.
    fileprivate func close() {
        guard !self.closed else { return }
        self.closed = true
        if let backend = self.backend {
            backend.state.requestFinished()
            self.backend = nil
        }
        self.upstream?.close(promise: nil)
        self.upstream = nil
        self.context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension TCPProxyHandler: Sendable {}

/// The backend's side of a TCP relay: what it reads goes to the client.
private final class TCPUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let client: TCPProxyHandler

    init(client: TCPProxyHandler) {
        self.client = client
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.client.upstreamRead(self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.client.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.client.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.client.close()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension TCPUpstreamHandler: Sendable {}
