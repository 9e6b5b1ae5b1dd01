import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in Docker engine for tests of `lbctl run --runtime docker`: it answers the Engine API calls
/// LBLab makes on a unix socket, and its "containers" are real `lbctl backend` processes on loopback,
/// killed, paused (SIGSTOP), resumed and started again as the API asks. Every call is logged.
final class FakeDockerEngine: Sendable {
    struct Container {
        var port: Int
        var process: ChildProcess?
        var paused = false
        var cpuNanos: Int64 = 0
    }

    let socket: String
    private let state: Mutex<(containers: [String: Container], calls: [String])>
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let server: Mutex<(any Channel)?> = Mutex(nil)

    /// An engine on `socket` with a running container `lblab-NAME` per name.
    init(socket: String, backends: [String]) async throws {
        self.socket = socket
        var containers: [String: Container] = [:]
        for name in backends {
            let (process, port) = try await startBackend(name: name)
            containers["lblab-\(name)"] = Container(port: port, process: process)
        }
        self.state = Mutex((containers, []))
        let engine = self
        let channel = try await ServerBootstrap(group: self.group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EngineHandler(engine: engine)) }
            }
            .bind(unixDomainSocketPath: socket)
            .get()
        self.server.withLock { $0 = channel }
    }

    /// Every call so far: `METHOD PATH BODY`.
    var calls: [String] { self.state.withLock { $0.calls } }

    /// Whether the container's backend process is alive and not paused.
    func isRunning(_ container: String) -> Bool {
        self.state.withLock { $0.containers[container].map { $0.process?.process.isRunning == true && !$0.paused } ?? false }
    }

    /// Stops the engine and every backend process.
    func shutdown() async {
        let processes = self.state.withLock { $0.containers.values.compactMap(\.process) }
        for process in processes {
            process.send(SIGCONT)
            await process.stop()
        }
        try? await self.server.withLock { $0 }?.close()
        try? await self.group.shutdownGracefully()
    }

    /// The answer to one call.
    func answer(method: String, path: String, body: String) -> (Int, String) {
        let parts = path.split(separator: "?", maxSplits: 1)
        let segments = parts[0].split(separator: "/").map(String.init)
        return self.state.withLock { state -> (Int, String) in
            state.calls.append("\(method) \(path) \(body)")
            guard segments.count == 3, segments[0] == "containers", var container = state.containers[segments[1]] else {
                return (404, #"{"message":"No such container"}"#)
            }
            let name = segments[1]
            let running = container.process?.process.isRunning == true
            defer { state.containers[name] = container }
            switch (method, segments[2]) {
            case ("GET", "json"):
                let command = ["backend", "-listen", "127.0.0.1:\(container.port)", "-name", String(name.dropFirst("lblab-".count))]
                let object: [String: Any] = ["State": ["Running": running, "Paused": container.paused], "Config": ["Cmd": command]]
                return (200, String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self))
            case ("GET", "stats"):
                container.cpuNanos += 7_000_000
                return (200, #"{"cpu_stats":{"cpu_usage":{"total_usage":\#(container.cpuNanos)},"throttling_data":{"throttled_time":3000000}},"memory_stats":{"usage":10485760,"stats":{"inactive_file":0}},"pids_stats":{"current":3}}"#)
            case ("POST", "kill"):
                container.process?.send(SIGKILL)
                return (204, "")
            case ("POST", "pause"):
                container.process?.send(SIGSTOP)
                container.paused = true
                return (204, "")
            case ("POST", "unpause"):
                container.process?.send(SIGCONT)
                container.paused = false
                return (204, "")
            case ("POST", "start"):
                guard !running else { return (304, "") }
                let backend = try? ChildProcess("lbctl", ["backend", "-listen", "127.0.0.1:\(container.port)", "-name", String(name.dropFirst("lblab-".count))])
                container.process = backend
                container.paused = false
                return backend == nil ? (500, #"{"message":"cannot start"}"#) : (204, "")
            case ("POST", "update"):
                return (200, #"{"Warnings":[]}"#)
            default:
                return (404, #"{"message":"page not found"}"#)
            }
        }
    }
}

/// One connection to the stand-in engine: a request (head and Content-Length body), one answer, close.
private final class EngineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let engine: FakeDockerEngine
    private var received = ""

    init(engine: FakeDockerEngine) {
        self.engine = engine
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received += String(buffer: self.unwrapInboundIn(data))
        guard let headEnd = self.received.range(of: "\r\n\r\n") else { return }
        let head = self.received[..<headEnd.lowerBound]
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }.flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        let body = String(self.received[headEnd.upperBound...])
        guard body.utf8.count >= length else { return }
        let requestLine = head.prefix { $0 != "\r" }.split(separator: " ")
        let (status, text) = self.engine.answer(method: String(requestLine[0]), path: String(requestLine[1]), body: body)
        let reason = status == 200 ? "OK" : status == 204 ? "No Content" : status == 304 ? "Not Modified" : "Error"
        let answer = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n\(text)"
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: answer))).whenComplete { _ in channel.close(promise: nil) }
    }
}
