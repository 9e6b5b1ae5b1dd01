import Synchronization

/// Where producers (the proxy, the load generator, the simulator, the samplers) hand their records
/// (DESIGN §3).
///
/// Every method returns at once: a sink never makes the hot path wait on disk. A sink that cannot keep
/// up drops records and counts them (the SQLite store writes the count to `runs.dropped_records`); it
/// never loses them silently.
public protocol RecordSink: Sendable {
    /// Takes one client-side request record.
    func record(_ request: RequestRecord)
    /// Takes one proxy-side request record.
    func record(_ request: ProxyRequestRecord)
    /// Takes one resource sample.
    func record(_ sample: ResourceSample)
    /// Takes one event.
    func record(_ event: RunEvent)
    /// Takes one backend of the run.
    func record(_ backend: BackendRecord)
    /// Takes many client-side request records at once. Producers on an event loop gather their records
    /// and hand them over in chunks, so that a sink shared by several threads is locked once per chunk
    /// instead of once per request.
    func record(contentsOf requests: [RequestRecord])
    /// Takes many proxy-side request records at once (see ``record(contentsOf:)-(RequestRecord)``).
    func record(contentsOf requests: [ProxyRequestRecord])
    /// Waits until the sink can take `count` more records without dropping any. Only for a producer
    /// that may wait because its clock is its own (the simulator); the proxy and the load generator
    /// never call it, so a sink never slows what it measures.
    func waitForRoom(_ count: Int)
}

extension RecordSink {
    /// Takes the records one by one.
    public func record(contentsOf requests: [RequestRecord]) {
        for request in requests { self.record(request) }
    }

    /// Takes the records one by one.
    public func record(contentsOf requests: [ProxyRequestRecord]) {
        for request in requests { self.record(request) }
    }

    /// A sink without a bound has room at once.
    public func waitForRoom(_ count: Int) {}
}

/// A sink that keeps everything in memory, for tests and for short runs that print and discard.
public final class InMemoryRecordSink: RecordSink {
    /// Everything recorded so far, in the order it arrived.
    public struct Contents: Sendable {
        /// Client-side request records.
        public var requests: [RequestRecord] = []
        /// Proxy-side request records.
        public var proxyRequests: [ProxyRequestRecord] = []
        /// Resource samples.
        public var samples: [ResourceSample] = []
        /// Events.
        public var events: [RunEvent] = []
        /// Backends.
        public var backends: [BackendRecord] = []
    }

    private let contents = Mutex(Contents())

    /// An empty sink.
    public init() {}

    /// A copy of everything recorded so far.
    public var snapshot: Contents {
        self.contents.withLock { $0 }
    }

    public func record(_ request: RequestRecord) { self.contents.withLock { $0.requests.append(request) } }
    public func record(_ request: ProxyRequestRecord) { self.contents.withLock { $0.proxyRequests.append(request) } }
    public func record(_ sample: ResourceSample) { self.contents.withLock { $0.samples.append(sample) } }
    public func record(_ event: RunEvent) { self.contents.withLock { $0.events.append(event) } }
    public func record(_ backend: BackendRecord) { self.contents.withLock { $0.backends.append(backend) } }
    public func record(contentsOf requests: [RequestRecord]) {
        self.contents.withLock { $0.requests.append(contentsOf: requests) }
    }
    public func record(contentsOf requests: [ProxyRequestRecord]) {
        self.contents.withLock { $0.proxyRequests.append(contentsOf: requests) }
    }
}
