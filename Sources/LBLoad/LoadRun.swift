public import LBCore
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One run of the load generator: its workers on their event loops, progress once a second, and the
/// final report.
///
/// ``run(progress:)`` checks that the target accepts connections, starts every worker at one common
/// instant (t0), and returns when every request has ended. ``interrupt()`` (Ctrl-C, SIGTERM) stops
/// sending; what is in flight ends as `interrupted`, and every request is still recorded.
public final class LoadRun: Sendable {
    /// What it was started with.
    public let configuration: LoadConfiguration
    private let sink: (any RecordSink)?
    private let workers = Mutex<[any LoadRunWorker]>([])
    private let interrupted = Atomic<Bool>(false)

    private let recordOrigin: UInt64?
    private let startAt: UInt64?
    private let backendIDs: [String: Int]

    /// A run of `configuration` that hands each request record to `sink`, if given.
    ///
    /// Within a larger experiment (`lbctl run`), `recordOrigin` is the experiment's time zero (monotonic
    /// uptime nanoseconds) that record times count from, `startAt` when the schedule starts (so that a
    /// fault timeline can count from the same instant), and `backendIDs` the ids its backends already
    /// have; by default records count from the load's own start, 20 ms after ``run(progress:)`` is
    /// called, and backends are numbered as seen.
    public init(
        configuration: LoadConfiguration,
        sink: (any RecordSink)?,
        recordOrigin: UInt64? = nil,
        startAt: UInt64? = nil,
        backendIDs: [String: Int] = [:]
    ) {
        self.configuration = configuration
        self.sink = sink
        self.recordOrigin = recordOrigin
        self.startAt = startAt
        self.backendIDs = backendIDs
    }

    /// Whether ``interrupt()`` was called.
    public var wasInterrupted: Bool { self.interrupted.load(ordering: .relaxed) }

    /// Stops the run: no new requests; the ones waiting or in flight end as `interrupted`.
    public func interrupt() {
        self.interrupted.store(true, ordering: .relaxed)
        for worker in self.workers.withLock({ $0 }) {
            worker.stop()
        }
    }

    /// Runs the load to its end (or its interruption) and reports what it measured. `progress` is
    /// called about once a second with the figures so far.
    public func run(progress: @escaping @Sendable (LoadProgress) -> Void = { _ in }) async throws(LoadError) -> LoadReport {
        let configuration = self.configuration
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        defer { group.shutdownGracefully { _ in } }
        let reached = try await Self.checkReachable(configuration.target, group: group)

        let threads = max(1, configuration.threads)
        // Time for every worker to be ready, unless the caller chose the start.
        let start = max(self.startAt ?? 0, NIODeadline.now().uptimeNanoseconds + 20_000_000)
        let context = LoadRunContext(t0Nanos: start, recordOriginNanos: self.recordOrigin, sink: self.sink, backendIDs: self.backendIDs)
        var engineThreads: NIOThreadPool?
        defer { engineThreads?.shutdownGracefully { _ in } }
        var started: [any LoadRunWorker] = []
        #if os(Linux)
        if Self.usesClosedLoopEngine(configuration) {
            // The address the check reached: of a name's addresses (`localhost`: ::1 and 127.0.0.1),
            // the one the target listens on, as SwiftNIO's connect found it by trying them.
            let address: SocketAddress
            do {
                address = try reached ?? SocketAddress.makeAddressResolvingHost(configuration.target.host, port: configuration.target.port)
            } catch {
                throw .unreachable(target: "\(configuration.target.host):\(configuration.target.port)", reason: Self.describe(error))
            }
            let pool = NIOThreadPool(numberOfThreads: threads)
            pool.start()
            engineThreads = pool
            for index in 0..<threads {
                let (clients, connections, budget) = Self.share(of: index, among: threads, configuration)
                let control = ClosedLoopControl()
                let finished = pool.runIfActive(eventLoop: group.next()) {
                    ClosedLoopEngine(
                        index: index,
                        clients: clients,
                        connections: connections,
                        requestBudget: budget,
                        address: address,
                        configuration: configuration,
                        context: context,
                        control: control
                    ).run()
                }
                started.append(ClosedLoopThread(control: control, finished: finished))
            }
        }
        #else
        _ = reached
        #endif
        if started.isEmpty {
            for index in 0..<threads {
                let eventLoop = group.next()
                let (clients, connections, budget) = Self.share(of: index, among: threads, configuration)
                let bound = try? await eventLoop.submit {
                    let kind: any LoadWorking.Type = configuration.webSocket ? WebSocketLoadWorker.self : LoadWorker.self
                    let worker = kind.init(
                        eventLoop: eventLoop,
                        index: index,
                        clients: clients,
                        connections: connections,
                        requestBudget: budget,
                        configuration: configuration,
                        context: context
                    )
                    return NIOLoopBound(worker, eventLoop: eventLoop)
                }.get()
                if let bound { started.append(EventLoopWorker(bound: bound)) }
            }
        }
        let workers = started
        self.workers.withLock { $0 = workers }
        for worker in workers {
            worker.start()
        }
        if self.wasInterrupted {
            self.interrupt()
        }

        let finished = EventLoopFuture.andAllComplete(workers.map(\.finished), on: group.next())
        let reporter = Task {
            var second = 1
            while !Task.isCancelled {
                let due = start + UInt64(second) * 1_000_000_000
                let now = NIODeadline.now().uptimeNanoseconds
                if due > now {
                    try? await Task.sleep(for: .nanoseconds(Int64(due - now)))
                }
                if Task.isCancelled { break }
                let statistics = await Self.gather(workers)
                progress(LoadProgress(elapsed: .seconds(second), statistics: statistics))
                second += 1
            }
        }
        try? await finished.get()
        reporter.cancel()
        let end = NIODeadline.now().uptimeNanoseconds
        let statistics = await Self.gather(workers)
        let connectError = await Self.firstConnectError(workers)
        if statistics.sent == 0, statistics.completed > 0, let connectError {
            throw LoadError.unreachable(target: "\(configuration.target.host):\(configuration.target.port)", reason: connectError)
        }
        let measuredNanos = max(1, Int64(bitPattern: end) - Int64(bitPattern: start) - configuration.warmup.nanoseconds)
        let scheduledNanos = configuration.duration.map { $0.nanoseconds - configuration.warmup.nanoseconds }
        return LoadReport(
            configuration: configuration,
            statistics: statistics,
            elapsed: .nanoseconds(Int64(bitPattern: end &- start)),
            sendWindow: .nanoseconds(
                self.wasInterrupted ? measuredNanos : min(measuredNanos, scheduledNanos ?? measuredNanos)
            ),
            requestsNumbered: context.requestsNumbered,
            interrupted: self.wasInterrupted
        )
    }

    /// Clients, connections and requests of worker `index` of `count`.
    private static func share(of index: Int, among count: Int, _ configuration: LoadConfiguration)
        -> (clients: [Int], connections: Int, budget: Int?)
    {
        let clients = Array(stride(from: index, to: configuration.clients, by: count))
        let connections = configuration.maxConnections / count + (index < configuration.maxConnections % count ? 1 : 0)
        let budget = configuration.requests.map { $0 / count + (index < $0 % count ? 1 : 0) }
        return (clients, connections, budget)
    }

    /// The clients the connections of worker `index` send for in a closed loop, one after another: its
    /// share (so that the workers' connections are different clients), or with more workers than
    /// clients, one client.
    static func closedLoopClients(_ share: [Int], index: Int, _ configuration: LoadConfiguration) -> [Int] {
        share.isEmpty ? [index % max(1, configuration.clients)] : share
    }

    /// Whether the run's requests go through ``ClosedLoopEngine`` (a closed loop of HTTP requests, on
    /// Linux) rather than a ``LoadWorker`` on a SwiftNIO event loop.
    static func usesClosedLoopEngine(_ configuration: LoadConfiguration) -> Bool {
        #if os(Linux)
        if case .closedLoop = configuration.pacing, !configuration.webSocket { return true }
        #endif
        return false
    }

    private static func gather(_ workers: [any LoadRunWorker]) async -> LoadStatistics {
        var total = LoadStatistics()
        for worker in workers {
            if let statistics = await worker.statistics() {
                total.add(statistics)
            }
        }
        return total
    }

    private static func firstConnectError(_ workers: [any LoadRunWorker]) async -> String? {
        for worker in workers {
            if let error = await worker.firstConnectError() {
                return error
            }
        }
        return nil
    }

    /// Connects once before the run, so that a wrong address is one clear error, not a run of failures;
    /// returns the address it connected to.
    private static func checkReachable(_ target: LoadConfiguration.Target, group: MultiThreadedEventLoopGroup) async throws(LoadError) -> SocketAddress? {
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .connect(host: target.host, port: target.port)
                .get()
            let address = channel.remoteAddress
            try? await channel.close()
            return address
        } catch {
            throw .unreachable(target: "\(target.host):\(target.port)", reason: Self.describe(error))
        }
    }

    /// "Connection refused" rather than NIO's whole error value.
    static func describe(_ error: any Error) -> String {
        if let connection = error as? NIOConnectionError, let first = connection.connectionErrors.first {
            return Self.describe(first.error)
        }
        if let io = error as? IOError {
            return String(cString: strerror(io.errnoCode)).lowercased()
        }
        return "\(error)"
    }
}

/// A worker of a run as ``LoadRun`` drives it, whatever thread it runs on.
protocol LoadRunWorker: Sendable {
    /// Starts sending at the run's t0.
    func start()
    /// Stops sending; requests in flight end as `interrupted`.
    func stop()
    /// Completes when every request of the worker has ended.
    var finished: EventLoopFuture<Void> { get }
    /// Statistics of the requests due after the warm-up, so far.
    func statistics() async -> LoadStatistics?
    /// The first connection error, to report when nothing could be sent.
    func firstConnectError() async -> String?
}

/// A ``LoadWorking`` worker on its SwiftNIO event loop.
private struct EventLoopWorker: LoadRunWorker {
    let bound: NIOLoopBound<any LoadWorking>

    func start() {
        self.bound.eventLoop.execute { self.bound.value.start() }
    }

    func stop() {
        self.bound.eventLoop.execute { self.bound.value.stop() }
    }

    var finished: EventLoopFuture<Void> {
        self.bound.eventLoop.flatSubmit { self.bound.value.finishedFuture }
    }

    func statistics() async -> LoadStatistics? {
        try? await self.bound.eventLoop.submit { self.bound.value.statistics }.get()
    }

    func firstConnectError() async -> String? {
        try? await self.bound.eventLoop.submit { self.bound.value.firstConnectError }.get() ?? nil
    }
}

#if os(Linux)
/// A ``ClosedLoopEngine`` on its own thread, which it starts on itself at the run's t0.
private struct ClosedLoopThread: LoadRunWorker {
    let control: ClosedLoopControl
    let finished: EventLoopFuture<Void>

    func start() {}

    func stop() {
        self.control.requestStop()
    }

    func statistics() async -> LoadStatistics? {
        self.control.statistics
    }

    func firstConnectError() async -> String? {
        self.control.firstConnectError
    }
}
#endif

/// The figures so far, once a second.
public struct LoadProgress: Sendable {
    /// Time since the start.
    public var elapsed: Duration
    /// Everything measured so far (after the warm-up).
    public var statistics: LoadStatistics
}

/// Why a load run could not run.
public enum LoadError: Error, Hashable, CustomStringConvertible {
    /// The target refused or did not answer the connection.
    case unreachable(target: String, reason: String)

    public var description: String {
        switch self {
        case .unreachable(let target, let reason): "cannot connect to \(target): \(reason)"
        }
    }
}
