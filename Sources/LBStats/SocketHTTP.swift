public import LBCore
public import NIOCore
import NIOPosix

/// Small HTTP/1.1 calls over a socket: the harness's to what it started on loopback (the backends'
/// control endpoint, the proxy's admin API) and the Docker Engine API's on its unix socket. One
/// connection per call (`Connection: close`), the whole answer read until the server closes (chunked
/// bodies decoded), every call bounded by a timeout.
public enum SocketHTTP {
    /// Where to connect.
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// A TCP address.
        case tcp(HostPort)
        /// A unix socket's path (`/var/run/docker.sock`).
        case unix(String)

        public var description: String {
            switch self {
            case .tcp(let address): "http://\(address)"
            case .unix(let path): "unix:\(path)"
            }
        }
    }

    /// An answer: the status and the body as text.
    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    /// Why a call failed: what was called, and what went wrong.
    public struct Failure: Error, Hashable, CustomStringConvertible {
        public var what: String
        public var reason: String
        public var description: String { "\(self.what): \(self.reason)" }
    }

    /// Sends `method path` with `body` (JSON) to `endpoint` and returns the answer.
    public static func call(
        _ method: String,
        _ endpoint: Endpoint,
        _ path: String,
        body: String? = nil,
        token: String? = nil,
        timeout: Duration = .seconds(2),
        group: any EventLoopGroup
    ) async throws(Failure) -> Response {
        let what = "\(method) \(endpoint)\(path)"
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: ByteBuffer.self)
        let host: String
        switch endpoint {
        case .tcp(let address): host = address.description
        case .unix: host = "localhost"
        }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        if let body {
            request += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        } else {
            request += "Content-Length: 0\r\n\r\n"
        }
        let text = request
        do {
            let bootstrap = ClientBootstrap(group: eventLoop)
                .connectTimeout(.nanoseconds(timeout.nanoseconds))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                    }
                }
            let channel: any Channel
            switch endpoint {
            case .tcp(let address): channel = try await bootstrap.connect(host: address.host, port: address.port).get()
            case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
            let timer = eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
                promise.fail(ChannelError.connectTimeout(.nanoseconds(timeout.nanoseconds)))
                channel.close(promise: nil)
            }
            defer { timer.cancel() }
            try await channel.writeAndFlush(ByteBuffer(string: text))
            let answer = try await promise.futureResult.get()
            return try Self.parse(answer, what: what)
        } catch let error as Failure {
            promise.fail(ChannelError.ioOnClosedChannel)
            throw error
        } catch {
            promise.fail(ChannelError.ioOnClosedChannel)
            throw Failure(what: what, reason: "\(error)")
        }
    }

    /// Splits a whole response into its status and body (de-chunked when it came chunked).
    static func parse(_ buffer: ByteBuffer, what: String) throws(Failure) -> Response {
        let text = String(buffer: buffer)
        guard let headEnd = text.range(of: "\r\n\r\n") else {
            throw Failure(what: what, reason: "the answer ended before its header did")
        }
        let head = text[..<headEnd.lowerBound]
        let statusLine = head.prefix { $0 != "\r" }.split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw Failure(what: what, reason: "not an HTTP answer: \(head.prefix(60))")
        }
        var body = String(text[headEnd.upperBound...])
        if head.lowercased().contains("transfer-encoding: chunked") {
            var decoded = ""
            var rest = Substring(body)
            while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
                let start = lineEnd.upperBound
                // A size past what came (however large: it is read from the peer) takes what there is.
                let left = rest[start...].utf8.count
                decoded += String(decoding: rest[start...].utf8.prefix(min(size, left)), as: UTF8.self)
                rest = rest[rest.utf8.index(start, offsetBy: size < left - 2 ? size + 2 : left)...]
            }
            body = decoded
        }
        return Response(status: status, body: body)
    }
}

/// Gathers everything a connection receives until it closes.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<ByteBuffer>
    private var received = ByteBuffer()

    init(promise: EventLoopPromise<ByteBuffer>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = self.unwrapInboundIn(data)
        self.received.writeBuffer(&chunk)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.succeed(self.received)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.promise.fail(error)
        context.close(promise: nil)
    }
}
