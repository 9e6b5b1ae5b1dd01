/// One resource sample of one process or container: a row of the `samples` table (DESIGN §5).
///
/// Counters are cumulative since the process started (CPU time, bytes), gauges are as of the sample
/// (memory, in-flight, open descriptors); a source that cannot measure a field leaves it `nil`.
public struct ResourceSample: Sendable, Hashable {
    /// When the sample was taken, in microseconds since the run's start.
    public var tMicros: Int64
    /// What was sampled: a backend's name, `proxy` or `loadgen`.
    public var source: String
    /// CPU time used, user and system.
    public var cpuUsageMicros: Int64?
    /// CPU time the cgroup was throttled for by its quota.
    public var cpuThrottledMicros: Int64?
    /// Resident memory.
    public var rssBytes: Int64?
    /// Requests in flight at the source.
    public var inFlight: Int?
    /// Open file descriptors.
    public var openFDs: Int?
    /// Bytes received.
    public var rxBytes: Int64?
    /// Bytes sent.
    public var txBytes: Int64?

    /// A sample of `source` at `tMicros`; fields not given are unknown.
    public init(
        tMicros: Int64,
        source: String,
        cpuUsageMicros: Int64? = nil,
        cpuThrottledMicros: Int64? = nil,
        rssBytes: Int64? = nil,
        inFlight: Int? = nil,
        openFDs: Int? = nil,
        rxBytes: Int64? = nil,
        txBytes: Int64? = nil
    ) {
        self.tMicros = tMicros
        self.source = source
        self.cpuUsageMicros = cpuUsageMicros
        self.cpuThrottledMicros = cpuThrottledMicros
        self.rssBytes = rssBytes
        self.inFlight = inFlight
        self.openFDs = openFDs
        self.rxBytes = rxBytes
        self.txBytes = txBytes
    }
}
