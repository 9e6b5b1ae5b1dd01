import LBConfig
import LBCore
import NIOCore

/// Where a run's backends live and how faults reach them: processes the harness starts, each in a
/// cgroup of its own (``BackendFleet``), or the containers of a Docker engine (``DockerFleet``,
/// `lbctl run --runtime docker`). The rest of a run (proxy, sampler, timeline, records) sees only this.
protocol BackendSet: Sendable {
    /// Every backend of the scenario with its address, in the scenario's order.
    var placements: [(spec: ScenarioBackend, address: HostPort)] { get }

    /// How the backends are isolated, as runs record it: `cgroup v1`, `cgroup v2`, `docker`, `none`.
    var isolation: String { get }

    /// Brings every backend up with the scenario's settings, and returns once each answers.
    func startAll() async throws(HarnessError)

    /// Applies a fault: `kill` (SIGKILL), `stop` (freeze: SIGSTOP, or a paused container), `resume`, or
    /// `restart` (a killed backend started again on its address, its settings applied again).
    func fault(_ action: TimelineStep.Action) async throws(HarnessError)

    /// The event loops the harness's own HTTP calls to the backends run on.
    var group: any EventLoopGroup { get }

    /// A resource sample of one backend, or `nil` when it is not running.
    func sample(_ name: String, tMicros: Int64) async -> ResourceSample?

    /// Stops what the harness started (processes), or leaves what it found (containers) running again.
    func stopAll(grace: Duration) async

    /// PIDs of processes the harness started that still run (for the end-of-run check).
    var runningPIDs: [Int32] { get }
}

extension BackendSet {
    /// The address of the backend called `name`.
    func address(of name: String) -> HostPort? {
        self.placements.first { $0.spec.name == name }?.address
    }

    /// Changes a backend's behaviour through its control endpoint (`{"latency": "50ms"}`), wherever it
    /// runs.
    func control(_ name: String, _ change: [String: any Sendable]) async throws(HarnessError) {
        guard let address = self.address(of: name) else { throw .control(what: "control", reason: "no backend \(name)") }
        try await ControlEndpoint.post(address, name: name, change, group: self.group)
    }
}
