import LBCore
import NIOCore
import Synchronization

/// The state one synthetic backend shares between its event loops: its settings, its capacity gate and
/// its counters.
final class SharedBackendState: Sendable {
    let configuration: BackendConfiguration
    private let settingsBox: Mutex<BackendSettings>
    private let gate: Mutex<CapacityGate<Waiter>>
    private let servedCount = Atomic<Int>(0)
    private let refusedCount = Atomic<Int>(0)
    private let connectionCount = Atomic<UInt64>(0)

    /// Starts a queued request on its own event loop.
    struct Waiter: Sendable {
        let eventLoop: any EventLoop
        let start: @Sendable () -> Void
    }

    init(configuration: BackendConfiguration) {
        self.configuration = configuration
        self.settingsBox = Mutex(configuration.settings)
        self.gate = Mutex(CapacityGate(capacity: configuration.capacity, queueLimit: configuration.queueLimit))
    }

    var settings: BackendSettings {
        self.settingsBox.withLock { $0 }
    }

    /// Applies a change from the control endpoint; throws and changes nothing when it is invalid.
    func apply(_ change: BackendSettings.Change) throws(BackendSettingsError) -> BackendSettings {
        let current = self.settings
        let next = try current.applying(change)
        self.settingsBox.withLock { $0 = next }
        return next
    }

    /// A seed for a new connection's generator: the backend's seed and the connection's number.
    func nextConnectionSeed() -> UInt64 {
        StableHash.combine(self.configuration.seed, self.connectionCount.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    func admit(_ waiter: Waiter) -> CapacityGate<Waiter>.Admission {
        let admission = self.gate.withLock { $0.requestArrived(waiter) }
        if case .refuse = admission {
            self.refusedCount.wrappingAdd(1, ordering: .relaxed)
        }
        return admission
    }

    /// A request that held a place is done; starts the next queued one, if any.
    func release() {
        self.servedCount.wrappingAdd(1, ordering: .relaxed)
        if let next = self.gate.withLock({ $0.requestFinished() }) {
            next.eventLoop.execute(next.start)
        }
    }

    /// The figures the control endpoint reports.
    struct Status: Codable, Sendable {
        var name: String
        var latency: String
        var cpu: String
        var errors: Double
        var healthy: Bool
        var serving: Int
        var queued: Int
        var served: Int
        var refused: Int
    }

    var status: Status {
        let settings = self.settings
        let (serving, queued) = self.gate.withLock { ($0.serving, $0.queued) }
        return Status(
            name: self.configuration.name,
            latency: settings.latency.description,
            cpu: GoDuration.format(settings.cpuWork),
            errors: settings.errorRate,
            healthy: settings.healthy,
            serving: serving,
            queued: queued,
            served: self.servedCount.load(ordering: .relaxed),
            refused: self.refusedCount.load(ordering: .relaxed)
        )
    }
}
