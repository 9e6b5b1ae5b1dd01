public import LBConfig
import LBCore
public import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The proxy's data plane: its HTTP listeners on a group of event loops, each loop with its own
/// pickers and upstream pools (``LoopContext``) over backend state shared by all.
public final class ProxyServer: Sendable {
    /// What it runs.
    public let runtime: ProxyRuntime
    private let group: MultiThreadedEventLoopGroup
    private let contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]
    private let listeners = Mutex<[(listener: ProxyConfiguration.Listener, channel: any Channel)]>([])
    private let adminChannel = Mutex<(any Channel)?>(nil)
    /// Set by ``start(adminToken:)``: from then on a reload binds and closes listeners.
    let isStarted = Atomic<Bool>(false)
    private let health: NIOLoopBound<HealthChecker>

    /// A server for `configuration` (which must be free of ``ProxyConfiguration/problems()``), on
    /// `configuration.threads` event loops (one per core when 0). `onHealthChange` hears every backend
    /// that active health checks take down or bring back.
    /// `recorder`, when given, takes a row per request, an event per health or admin change, and the
    /// access log.
    public init(
        configuration: ProxyConfiguration,
        recorder: ProxyRecorder? = nil,
        onHealthChange: @escaping @Sendable (HealthChange) -> Void = { _ in }
    ) throws {
        self.runtime = ProxyRuntime(configuration: configuration, recorder: recorder)
        let onHealthChange: @Sendable (HealthChange) -> Void = { change in
            recorder?.event(
                change.isUp ? "health_up" : "health_down",
                change.backend,
                ["service": change.service, "probes": String(change.probes), "detail": change.detail]
            )
            onHealthChange(change)
        }
        let threads = configuration.threads > 0 ? configuration.threads : System.coreCount
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        for (index, loop) in self.group.makeIterator().enumerated() {
            let runtime = self.runtime
            let context = try loop.submit {
                let context = try LoopContext(eventLoop: loop, runtime: runtime, index: index)
                context.start()
                return NIOLoopBound(context, eventLoop: loop)
            }.wait()
            contexts[ObjectIdentifier(loop)] = context
        }
        self.contexts = contexts
        let checkerLoop = self.group.next()
        let runtime = self.runtime
        self.health = try checkerLoop.submit {
            NIOLoopBound(HealthChecker(eventLoop: checkerLoop, runtime: runtime, onTransition: onHealthChange), eventLoop: checkerLoop)
        }.wait()
    }

    /// Where the admin API listens, once started.
    public var adminAddress: SocketAddress? {
        self.adminChannel.withLock { $0?.localAddress }
    }

    /// Binds every listener and the admin API's; returns the addresses of the listeners (a port 0 in
    /// the configuration gets one from the kernel). `adminToken` is the bearer token the admin API
    /// requires, if any.
    public func start(adminToken: String? = nil) async throws -> [SocketAddress] {
        self.isStarted.store(true, ordering: .relaxed)
        let health = self.health
        try await health.eventLoop.submit { health.value.start() }.get()
        var bound: [SocketAddress] = []
        let configuration = self.runtime.configuration
        for listener in configuration.listeners {
            let channel = try await self.bind(listener)
            if let address = channel.localAddress { bound.append(address) }
        }
        try await self.startAdmin(configuration.admin, token: adminToken)
        return bound
    }

    /// Listens as `listener` says, and keeps the channel among the listeners.
    @discardableResult
    func bind(_ listener: ProxyConfiguration.Listener) async throws -> any Channel {
        let contexts = self.contexts
        // A TCP listener forwards to its one service (the configuration names it and checks it).
        let tcpService = listener.mode == .tcp ? listener.service.flatMap(self.runtime.index(ofService:)) : nil
        if listener.mode == .tcp && tcpService == nil {
            throw ProxyError.unsupported("listener \(listener.address): protocol tcp needs a service")
        }
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // Each connection keeps its last receive buffer for the next read: start it at 512 bytes
            // (a request head's size) rather than NIO's 2 KiB, which 10,000 idle keep-alive clients
            // would hold 20 MiB of; it grows for connections that read more (bench/RESULTS.md).
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65_536))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let loop = contexts[ObjectIdentifier(channel.eventLoop)] else {
                        throw ProxyError.unsupported("a channel on an event loop the server does not own")
                    }
                    if let tcpService {
                        try channel.pipeline.syncOperations.addHandler(TCPProxyHandler(loop: loop.value, service: tcpService))
                    } else {
                        try channel.pipeline.syncOperations.addHandler(ProxyHTTPHandler(loop: loop.value))
                    }
                }
            }
            .bind(host: listener.address.host, port: listener.address.port)
            .get()
        self.listeners.withLock { $0.append((listener, channel)) }
        return channel
    }

    /// Stops listening as `listener`; the connections it accepted go on.
    func unbind(_ listener: ProxyConfiguration.Listener) async {
        let channels = self.listeners.withLock { listeners in
            defer { listeners.removeAll { $0.listener == listener } }
            return listeners.filter { $0.listener == listener }.map(\.channel)
        }
        for channel in channels { try? await channel.close() }
    }

    /// The listeners bound now.
    var listening: [ProxyConfiguration.Listener] {
        self.listeners.withLock { $0.map(\.listener) }
    }

    /// Serves the admin API as `admin` says, requiring `token` if any; the admin listener before it, if
    /// any, closes once this one listens.
    func startAdmin(_ admin: ProxyConfiguration.Admin, token: String?) async throws {
        let group = self.group
        let api = AdminAPI(runtime: self.runtime, token: token) { address in
            await AdminAPI.acceptsConnections(address, group: group)
        }
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHTTPHandler(api: api))
                }
            }
            .bind(host: admin.address.host, port: admin.address.port)
            .get()
        let old = self.adminChannel.withLock { current in
            defer { current = channel }
            return current
        }
        try? await old?.close()
    }

    /// Requests in flight to backends, over every service (those a reload retired included).
    public var requestsInFlight: Int {
        self.runtime.allServices.reduce(0) { sum, service in sum + service.backends.reduce(0) { $0 + $1.state.inFlight } }
    }

    /// Stops accepting, lets requests in flight finish for at most `grace`, then closes everything.
    /// Returns the number of requests still in flight when it closed them (0 when all finished).
    @discardableResult
    public func shutdown(grace: Duration) async -> Int {
        let listeners = self.listeners.withLock { channels in
            defer { channels.removeAll() }
            return channels
        }
        for (_, channel) in listeners {
            try? await channel.close()
        }
        if let admin = self.adminChannel.withLock({ channel in defer { channel = nil }; return channel }) {
            try? await admin.close()
        }
        let deadline = ContinuousClock.now + grace
        while self.requestsInFlight > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = self.requestsInFlight
        let health = self.health
        try? await health.eventLoop.submit { health.value.stop() }.get()
        for (_, context) in self.contexts {
            try? await context.eventLoop.submit { context.value.stop() }.get()
        }
        try? await self.group.shutdownGracefully()
        return left
    }
}

/// Why the proxy cannot do what it was asked.
public enum ProxyError: Error, CustomStringConvertible {
    /// A feature the configuration asks for that this build does not have.
    case unsupported(String)

    public var description: String {
        switch self {
        case .unsupported(let what): what
        }
    }
}
