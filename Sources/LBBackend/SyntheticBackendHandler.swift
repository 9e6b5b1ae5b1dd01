import Foundation
import LBCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves one HTTP/1.1 connection of a synthetic backend: the health path, the control endpoint, and
/// every other path as a request that takes the configured CPU work and latency, fails with the
/// configured probability, and waits for a place when the backend is at capacity.
///
/// Requests on a connection are handled one at a time (`HTTPServerPipelineHandler` holds back
/// pipelined ones), so the handler keeps the current request's head and nothing else.
final class SyntheticBackendHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Its name in the pipeline, by which a WebSocket switch removes it.
    static let name = "lblab-backend"

    private let shared: SharedBackendState
    private let cpuPool: NIOThreadPool
    private let okBody: ByteBuffer
    /// The body of the request being read, when the backend echoes.
    private var echoBody: ByteBuffer?
    private var echoChunked = false
    private var generator: SeededGenerator
    private var head: HTTPRequestHead?
    private var controlBody: ByteBuffer?

    /// The largest control request body read.
    private static let maxControlBody = 64 * 1024

    init(shared: SharedBackendState, cpuPool: NIOThreadPool, okBody: ByteBuffer) {
        self.shared = shared
        self.cpuPool = cpuPool
        self.okBody = okBody
        self.generator = SeededGenerator(seed: shared.nextConnectionSeed())
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.controlBody = nil
            // A client that waits for leave to send its body (curl does, for bodies over 1 KiB) gets it at
            // once, as nginx gives it, instead of sending after its own timeout (RFC 9110 §10.1.1).
            if head.version == .http1_1, head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            if self.shared.configuration.echo {
                self.echoBody = context.channel.allocator.buffer(capacity: 0)
                self.echoChunked = head.headers[canonicalForm: "transfer-encoding"].contains { $0.lowercased() == "chunked" }
            }
        case .body(var chunk):
            if var echo = self.echoBody {
                self.echoBody = nil  // keep the buffer uniquely referenced while it grows
                if echo.readableBytes + chunk.readableBytes <= BackendConfiguration.maxEchoBytes {
                    echo.writeBuffer(&chunk)
                }
                self.echoBody = echo
            }
            if self.head?.uri.hasPrefix(BackendConfiguration.controlPath) == true {
                if (self.controlBody?.readableBytes ?? 0) + chunk.readableBytes <= Self.maxControlBody {
                    self.controlBody.setOrWriteBuffer(&chunk)
                }
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.route(head, context: context)
        }
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        if path == self.shared.configuration.healthPath {
            let healthy = self.shared.settings.healthy
            self.respond(head, status: healthy ? .ok : .serviceUnavailable, text: healthy ? "ok\n" : "unhealthy\n", context: context)
        } else if path == BackendConfiguration.controlPath {
            self.control(head, context: context)
        } else {
            self.admit(head, echo: self.echoBody.map { ($0, self.echoChunked) }, context: context)
        }
        self.echoBody = nil
    }

    // MARK: Requests

    /// What an echoing backend sends back: the request's body, and whether it came chunked.
    private typealias Echo = (body: ByteBuffer, chunked: Bool)

    private func admit(_ head: HTTPRequestHead, echo: Echo?, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let waiter = SharedBackendState.Waiter(eventLoop: context.eventLoop) {
            let (handler, context) = loopBound.value
            handler.serve(head, echo: echo, context: context)
        }
        switch self.shared.admit(waiter) {
        case .serve:
            self.serve(head, echo: echo, context: context)
        case .queued:
            break  // `release()` of an earlier request starts it
        case .refuse:
            self.respond(head, status: .serviceUnavailable, text: "queue full\n", context: context)
        }
    }

    /// Serves a request that holds a place: CPU work, then the sampled latency, then the answer.
    private func serve(_ head: HTTPRequestHead, echo: Echo?, context: ChannelHandlerContext) {
        let settings = self.shared.settings
        let latency = settings.latency.sample(using: &self.generator)
        let fails = settings.errorRate > 0 && self.generator.unitInterval() < settings.errorRate
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let answer: @Sendable () -> Void = {
            let (handler, context) = loopBound.value
            handler.shared.release()
            if fails {
                handler.respond(head, status: .internalServerError, text: "synthetic error\n", context: context)
            } else if let echo {
                handler.respond(head, status: .ok, body: echo.body, chunked: echo.chunked, context: context)
            } else {
                handler.respond(head, status: .ok, body: handler.okBody, context: context)
            }
        }
        guard settings.cpuWork > .zero else {
            self.after(latency, on: context.eventLoop, answer)
            return
        }
        let work = settings.cpuWork
        self.cpuPool.runIfActive(eventLoop: context.eventLoop) {
            CPUWork.spin(work)
        }.whenComplete { _ in
            loopBound.value.0.after(latency, on: loopBound.value.1.eventLoop, answer)
        }
    }

    private func after(_ delay: Duration, on eventLoop: any EventLoop, _ body: @escaping @Sendable () -> Void) {
        if delay <= .zero {
            body()
        } else {
            eventLoop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) { body() }
        }
    }

    // MARK: Control

    private func control(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard Self.isLoopback(context.channel.remoteAddress) else {
            self.respond(head, status: .forbidden, text: "the control endpoint answers loopback clients only\n", context: context)
            return
        }
        switch head.method {
        case .GET:
            self.respondJSON(head, status: .ok, self.shared.status, context: context)
        case .POST, .PUT, .PATCH:
            let body = self.controlBody.map { Data($0.readableBytesView) } ?? Data()
            do {
                let change = try JSONDecoder().decode(BackendSettings.Change.self, from: body)
                _ = try self.shared.apply(change)
                self.respondJSON(head, status: .ok, self.shared.status, context: context)
            } catch let error as BackendSettingsError {
                self.respondJSON(head, status: .badRequest, ["error": "\(error)"], context: context)
            } catch {
                let message = "the body must be a JSON object with latency, cpu, errors or healthy: \(error)"
                self.respondJSON(head, status: .badRequest, ["error": message], context: context)
            }
        default:
            self.respond(head, status: .methodNotAllowed, text: "GET or POST\n", context: context)
        }
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        switch address {
        case .v4(let v4):
            return v4.address.sin_addr.s_addr.bigEndian >> 24 == 127
        case .v6:
            return address?.ipAddress == "::1"
        default:
            return false
        }
    }

    // MARK: Answers

    private func respondJSON(_ head: HTTPRequestHead, status: HTTPResponseStatus, _ value: some Encodable, context: ChannelHandlerContext) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        var buffer = context.channel.allocator.buffer(capacity: data.count + 1)
        buffer.writeBytes(data)
        buffer.writeString("\n")
        self.respond(head, status: status, body: buffer, contentType: "application/json", context: context)
    }

    private func respond(_ head: HTTPRequestHead, status: HTTPResponseStatus, text: String, context: ChannelHandlerContext) {
        self.respond(head, status: status, body: context.channel.allocator.buffer(string: text), context: context)
    }

    private func respond(
        _ head: HTTPRequestHead,
        status: HTTPResponseStatus,
        body: ByteBuffer,
        contentType: String = "text/plain",
        chunked: Bool = false,
        context: ChannelHandlerContext
    ) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.reserveCapacity(4)
        headers.add(name: "Content-Type", value: contentType)
        if chunked {
            headers.add(name: "Transfer-Encoding", value: "chunked")
        } else {
            headers.add(name: "Content-Length", value: String(body.readableBytes))
        }
        headers.add(name: "X-LBLab-Backend", value: self.shared.configuration.name)
        let keepAlive = head.isKeepAlive
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if chunked {
            // In pieces of 64 KiB, each its own chunk.
            var rest = body
            while let piece = rest.readSlice(length: min(rest.readableBytes, 65_536)), piece.readableBytes > 0 {
                context.write(self.wrapOutboundOut(.body(.byteBuffer(piece))), promise: nil)
            }
        } else {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension SyntheticBackendHandler: Sendable {}
