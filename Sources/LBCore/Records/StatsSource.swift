/// Samples the resources of one process or container (DESIGN §3): CPU time used and throttled, memory,
/// open descriptors, bytes moved. Implemented over `/proc`, cgroup v1 and v2 files, and the Docker
/// Engine API in `LBStats`; the harness calls every source on one timer and records what it returns.
public protocol StatsSource: Sendable {
    /// What is sampled: a backend's name, `proxy` or `loadgen` (the `samples.source` column).
    var name: String { get }

    /// A sample now, stamped `tMicros`; `nil` when the source is gone (its process exited). Fields the
    /// source cannot measure are left `nil`.
    func sample(tMicros: Int64) async -> ResourceSample?
}
