import LBCore
import NIOCore
import NIOPosix

/// The harness's HTTP/1.1 calls to what it started on loopback: the backends' control endpoint and
/// the proxy's admin API. One connection per call (`Connection: close`), the whole answer read until
/// the server closes, every call bounded by a timeout.
enum LoopbackHTTP {
    /// An answer: the status and the body as text.
    struct Response: Sendable {
        var status: Int
        var body: String
    }

    /// Sends `method path` with `body` (JSON) to `address` and returns the answer, or throws a
    /// ``HarnessError/control(what:reason:)`` naming the call.
    static func call(
        _ method: String,
        _ address: HostPort,
        _ path: String,
        body: String? = nil,
        token: String? = nil,
        timeout: Duration = .seconds(2),
        group: any EventLoopGroup
    ) async throws(HarnessError) -> Response {
        let what = "\(method) http://\(address)\(path)"
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: ByteBuffer.self)
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        if let body {
            request += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        } else {
            request += "Content-Length: 0\r\n\r\n"
        }
        let text = request
        do {
            let channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(.nanoseconds(timeout.nanoseconds))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                    }
                }
                .connect(host: address.host, port: address.port)
                .get()
            let timer = eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
                promise.fail(ChannelError.connectTimeout(.nanoseconds(timeout.nanoseconds)))
                channel.close(promise: nil)
            }
            defer { timer.cancel() }
            try await channel.writeAndFlush(ByteBuffer(string: text))
            let answer = try await promise.futureResult.get()
            return try Self.parse(answer, what: what)
        } catch let error as HarnessError {
            promise.fail(ChannelError.ioOnClosedChannel)
            throw error
        } catch {
            promise.fail(ChannelError.ioOnClosedChannel)
            throw .control(what: what, reason: "\(error)")
        }
    }

    /// Splits a whole response into its status and body (de-chunked when it came chunked).
    static func parse(_ buffer: ByteBuffer, what: String) throws(HarnessError) -> Response {
        let text = String(buffer: buffer)
        guard let headEnd = text.range(of: "\r\n\r\n") else {
            throw .control(what: what, reason: "the answer ended before its header did")
        }
        let head = text[..<headEnd.lowerBound]
        let statusLine = head.prefix { $0 != "\r" }.split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw .control(what: what, reason: "not an HTTP answer: \(head.prefix(60))")
        }
        var body = String(text[headEnd.upperBound...])
        if head.lowercased().contains("transfer-encoding: chunked") {
            var decoded = ""
            var rest = Substring(body)
            while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
                let start = lineEnd.upperBound
                let chunk = rest[start...].utf8.prefix(size)
                decoded += String(decoding: chunk, as: UTF8.self)
                rest = rest[rest.utf8.index(start, offsetBy: min(size + 2, rest[start...].utf8.count))...]
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
