public import LBCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
public import ServiceLifecycle
import Synchronization

/// A synthetic HTTP/1.1 backend (`lbctl backend`): keep-alive, configurable latency, CPU work, errors and
/// capacity, a health path, a loopback control endpoint, and `X-LBLab-Backend` on every response.
///
/// A `Service`: ``run()`` listens until graceful shutdown (SIGTERM or SIGINT in a `ServiceGroup`), then
/// stops accepting and closes. Tests call ``start()`` and ``stop()`` directly.
public final class SyntheticBackend: Service {
    /// What it was started with.
    public let configuration: BackendConfiguration
    private let shared: SharedBackendState
    private let group: MultiThreadedEventLoopGroup
    private let cpuPool: NIOThreadPool
    private let serverChannel = Mutex<(any Channel)?>(nil)

    /// A backend that will serve `configuration` once started.
    public init(configuration: BackendConfiguration) throws(BackendSettingsError) {
        try configuration.settings.validate()
        self.configuration = configuration
        self.shared = SharedBackendState(configuration: configuration)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        self.cpuPool = NIOThreadPool(numberOfThreads: max(1, configuration.threads))
    }

    /// Binds the listener and starts serving; returns the address it listens on (useful with port 0).
    public func start() async throws -> HostPort {
        self.cpuPool.start()
        let shared = self.shared
        let cpuPool = self.cpuPool
        let okBody = ByteBuffer(repeating: UInt8(ascii: "x"), count: max(0, self.configuration.responseBytes))
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [configuration] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let path = configuration.webSocketPath {
                        // Once a request is switched, the HTTP handler leaves the pipeline to the echo.
                        let upgrade: NIOHTTPServerUpgradeConfiguration = (
                            upgraders: [WebSocketEcho.upgrader(path: path, backend: configuration.name)],
                            completionHandler: { context in context.pipeline.removeHandler(name: SyntheticBackendHandler.name, promise: nil) }
                        )
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withServerUpgrade: upgrade)
                    } else {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        SyntheticBackendHandler(shared: shared, cpuPool: cpuPool, okBody: okBody),
                        name: SyntheticBackendHandler.name
                    )
                }
            }
            .bind(host: self.configuration.listen.host, port: self.configuration.listen.port)
            .get()
        self.serverChannel.withLock { $0 = channel }
        return HostPort(host: self.configuration.listen.host, port: channel.localAddress?.port ?? self.configuration.listen.port)
    }

    /// Stops accepting, closes every connection, and releases the threads.
    public func stop() async throws {
        let channel = self.serverChannel.withLock { channel in
            defer { channel = nil }
            return channel
        }
        try? await channel?.close()
        try await self.group.shutdownGracefully()
        try await self.cpuPool.shutdownGracefully()
    }

    /// Serves until graceful shutdown or cancellation.
    public func run() async throws {
        _ = try await self.start()
        try? await gracefulShutdown()
        try await self.stop()
    }

    /// The settings in force now (they change through the control endpoint).
    public var settings: BackendSettings {
        self.shared.settings
    }
}
