import LBCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves ``AdminAPI`` over HTTP/1.1 on its own listener (NIO's HTTP codec: the admin API is not on
/// the data path).
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The largest request body taken.
    static let maxBody = 1 << 20

    private let api: AdminAPI
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(api: AdminAPI) {
        self.api = api
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
            self.tooLarge = false
        case .body(let buffer):
            if self.body.count + buffer.readableBytes > Self.maxBody {
                self.tooLarge = true
            } else {
                self.body += buffer.readableBytesView
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let keepAlive = head.isKeepAlive
            if self.tooLarge {
                self.respond(context: context, AdminAPI.Response.error(413, "request body over 1 MiB"), keepAlive: false)
                return
            }
            let request = AdminAPI.Request(
                method: head.method.rawValue,
                target: head.uri,
                authorization: head.headers.first(name: "authorization"),
                body: self.body
            )
            let api = self.api
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let promise = context.eventLoop.makePromise(of: AdminAPI.Response.self)
            promise.completeWithTask { await api.handle(request) }
            promise.futureResult.whenSuccess { response in
                let (handler, context) = loopBound.value
                handler.respond(context: context, response, keepAlive: keepAlive)
            }
        }
    }

    private func respond(context: ChannelHandlerContext, _ response: AdminAPI.Response, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        if response.status == 401 { headers.add(name: "WWW-Authenticate", value: "Bearer") }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension AdminHTTPHandler: Sendable {}

extension AdminAPI {
    /// Whether `address` accepts a TCP connection within a second.
    static func acceptsConnections(_ address: HostPort, group: any EventLoopGroup) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(1))
                .connect(host: address.host, port: address.port)
                .get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }
}
