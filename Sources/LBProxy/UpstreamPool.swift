import LBConfig
import LBCore
import NIOCore
import NIOPosix

/// The connections of one event loop to one backend: idle ones kept for reuse (trimmed to `maxIdle`
/// once a second, closed after `idleTimeout` unused), new ones opened on that loop when none is idle.
final class UpstreamPool {
    let backend: BackendSpec
    private let eventLoop: any EventLoop
    /// How many idle connections are kept, and how long (a reload may change them).
    var settings: Service.PoolSettings
    private var idle: [UpstreamConnection] = []
    /// Whether the backend left the service: connections are closed as they come back.
    private var retired = false

    init(backend: BackendSpec, eventLoop: any EventLoop, settings: Service.PoolSettings) {
        self.backend = backend
        self.eventLoop = eventLoop
        self.settings = settings
    }

    /// An idle connection that can serve a request, if there is one (the most recently used).
    func takeIdle() -> UpstreamConnection? {
        while let connection = self.idle.popLast() {
            if connection.isReusable { return connection }
        }
        return nil
    }

    /// A new connection, opened within `timeout`.
    func connect(timeout connectTimeout: Duration) -> EventLoopFuture<UpstreamConnection> {
        let timeout = TimeAmount.nanoseconds(max(1, connectTimeout.nanoseconds))
        let pool = ObjectIdentifier(self)
        return ClientBootstrap(group: self.eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamConnection(channel: channel, pool: pool))
                }
            }
            .connect(host: self.backend.address.host, port: self.backend.address.port)
            .assumeIsolated()
            .flatMapThrowing { channel in
                let connection = try channel.pipeline.syncOperations.handler(type: UpstreamConnection.self)
                // Once, for the connection's life: a connection that closes while idle leaves the pool.
                connection.onClose = { [unowned self] closed in
                    self.idle.removeAll { $0 === closed }
                }
                return connection
            }
            .nonisolated()
    }

    /// Takes back `connection` after a complete exchange: kept idle if it can serve another request,
    /// closed otherwise, and always closed with a `maxIdle` of 0 (a connection per request). A burst
    /// may leave more than `maxIdle` idle; ``sweep(nowNanos:)`` trims them.
    func release(_ connection: UpstreamConnection, nowNanos: UInt64) {
        connection.delegate = nil
        guard connection.isReusable, !self.retired, self.settings.maxIdle > 0 else {
            connection.channel.close(promise: nil)
            return
        }
        connection.idleSinceNanos = nowNanos
        self.idle.append(connection)
    }

    /// Once a second: closes the connections idle for longer than the idle timeout, and then the
    /// longest idle beyond `maxIdle`.
    ///
    /// Between sweeps a burst's connections wait for the next burst. Closing each one that came back
    /// beyond `maxIdle`, as the pool once did, made a load whose concurrency rose and fell around it
    /// (an open-loop load, with its Poisson or merely uneven arrivals) open and close a connection
    /// per request, tens of thousands a minute, until the proxy fell behind for good (HAProxy purges
    /// idle server connections gradually too, `pool-purge-delay`).
    func sweep(nowNanos: UInt64) {
        // Released in time order and taken from the end: the longest idle come first.
        let limit = UInt64(max(0, self.settings.idleTimeout.nanoseconds))
        let expired = self.idle.prefix { nowNanos &- $0.idleSinceNanos >= limit }.count
        let count = max(expired, self.idle.count - self.settings.maxIdle)
        guard count > 0 else { return }
        let closing = self.idle[..<count]
        self.idle.removeFirst(count)
        for connection in closing { connection.channel.close(promise: nil) }
    }

    /// The backend left the service: closes the idle connections, and the others as they are released.
    func retire() {
        self.retired = true
        self.closeAll()
    }

    /// Closes every idle connection.
    func closeAll() {
        for connection in self.idle {
            connection.channel.close(promise: nil)
        }
        self.idle.removeAll()
    }

    /// Idle connections now.
    var idleCount: Int { self.idle.count }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}
