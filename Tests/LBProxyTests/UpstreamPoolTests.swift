import LBConfig
import LBCore
import LBTesting
import NIOCore
import NIOPosix
import Testing

@testable import LBProxy

@Suite("Upstream connection pool")
struct UpstreamPoolTests {
    /// What one pass over a pool with `max-idle` 2 saw: idle counts after each step, and whether the
    /// connections kept were the right ones.
    struct Observed: Sendable, Equatable {
        var idleAfterReleases = 0
        var idleAfterTrim = 0
        var keptMostRecentlyUsed = false
        var idleAfterTimeout = 0
    }

    /// Opens five connections to `backend`, releases them one after another, and sweeps: once a
    /// moment later, and once past the idle timeout. Completes after the closed connections closed.
    private func exercise(backend: HostPort, on loop: any EventLoop) -> EventLoopFuture<Observed> {
        let pool = UpstreamPool(
            backend: BackendSpec(address: backend),
            eventLoop: loop,
            settings: Service.PoolSettings(maxIdle: 2, idleTimeout: .seconds(60))
        )
        let promise = loop.makePromise(of: Observed.self)
        var opened: [UpstreamConnection] = []
        func finish() {
            let start: UInt64 = 1_000_000_000
            var observed = Observed()
            for (index, connection) in opened.enumerated() { pool.release(connection, nowNanos: start + UInt64(index)) }
            observed.idleAfterReleases = pool.idleCount
            pool.sweep(nowNanos: start + 1_000)
            observed.idleAfterTrim = pool.idleCount
            let first = pool.takeIdle()
            let second = pool.takeIdle()
            observed.keptMostRecentlyUsed = first === opened[4] && second === opened[3] && pool.takeIdle() == nil
            pool.release(opened[3], nowNanos: start + 2_000)
            pool.release(opened[4], nowNanos: start + 2_001)
            pool.sweep(nowNanos: start + 2_001 + 61_000_000_000)
            observed.idleAfterTimeout = pool.idleCount
            // The pool closed three; whatever it left open closes here, so that a pool that kept too
            // many fails the test instead of hanging it.
            let closes = opened.map { $0.channel.closeFuture }
            for connection in opened where connection.channel.isActive {
                connection.channel.close(promise: nil)
            }
            let result = observed
            EventLoopFuture.andAllComplete(closes, on: loop).whenComplete { _ in promise.succeed(result) }
        }
        func openNext() {
            guard opened.count < 5 else { return finish() }
            pool.connect(timeout: .seconds(2)).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let connection):
                    opened.append(connection)
                    openNext()
                case .failure(let error):
                    promise.fail(error)
                }
            }
        }
        openNext()
        return promise.futureResult
    }

    @Test("a burst's connections stay idle until the sweep trims them to max-idle, the most recently used kept; the idle timeout closes the rest")
    func burstKeptUntilSweep() async throws {
        let observed = try await withSyntheticBackend { address in
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            return try await loop.flatSubmit { self.exercise(backend: address, on: loop) }.get()
        }
        #expect(observed == Observed(idleAfterReleases: 5, idleAfterTrim: 2, keptMostRecentlyUsed: true, idleAfterTimeout: 0))
    }

    @Test("with max-idle 0 a released connection is closed at once, never kept for another request")
    func maxIdleZeroClosesOnRelease() async throws {
        let (idleAfterRelease, closedByRelease) = try await withSyntheticBackend { address in
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            return try await loop.flatSubmit {
                let pool = UpstreamPool(
                    backend: BackendSpec(address: address),
                    eventLoop: loop,
                    settings: Service.PoolSettings(maxIdle: 0, idleTimeout: .seconds(60))
                )
                return pool.connect(timeout: .seconds(2)).assumeIsolated().flatMap { connection in
                    pool.release(connection, nowNanos: 1_000)
                    let idle = pool.idleCount + (pool.takeIdle() == nil ? 0 : 1)
                    // On its loop a close takes effect at once. A pool that kept the connection fails
                    // the test; the close below ends it either way.
                    let closedByRelease = !connection.channel.isActive
                    connection.channel.close(promise: nil)
                    return connection.channel.closeFuture.map { (idle, closedByRelease) }
                }.nonisolated()
            }.get()
        }
        #expect(idleAfterRelease == 0)
        #expect(closedByRelease)
    }
}
