import LBConfig
import LBCore

/// A backend's resource use as a share of its limits, from two of the sampler's readings: what
/// `least-resources` balances on, sent to the proxy's `PUT /backends/NAME/usage`.
///
/// CPU: the CPU time used between the readings over the wall time between them, divided by the
/// backend's CPU limit in cores (the host's CPUs when it has none); a backend its cgroup throttles
/// reads close to 1. Memory: the resident set over the memory limit, when there is one.
struct ResourceFigure: Equatable {
    /// CPU used as a share of the limit, when two readings with CPU time are at hand.
    var cpu: Double?
    /// Memory as a share of the limit, when there is a limit and a reading.
    var memory: Double?

    /// The figure of `backend` from its `previous` and `current` readings; `nil` when neither share can
    /// be told.
    init?(backend: ScenarioBackend, previous: ResourceSample?, current: ResourceSample, hostCPUs: Int) {
        if let previous, let before = previous.cpuUsageMicros, let after = current.cpuUsageMicros, current.tMicros > previous.tMicros {
            let cores = backend.cpuLimit ?? Double(max(1, hostCPUs))
            self.cpu = Double(max(0, after - before)) / (Double(current.tMicros - previous.tMicros) * cores)
        }
        if let limit = backend.memoryLimit, let rss = current.rssBytes {
            self.memory = Double(rss) / Double(limit)
        }
        guard self.cpu != nil || self.memory != nil else { return nil }
    }

    /// The body of `PUT /backends/NAME/usage`: shares rounded to 1e-4, at most 100 each.
    var body: [String: Any] {
        var body: [String: Any] = [:]
        if let cpu = self.cpu { body["cpu"] = Self.rounded(cpu) }
        if let memory = self.memory { body["memory"] = Self.rounded(memory) }
        return body
    }

    private static func rounded(_ share: Double) -> Double {
        min(100, (share * 10_000).rounded() / 10_000)
    }
}
