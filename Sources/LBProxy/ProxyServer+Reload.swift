public import LBConfig

extension ProxyServer {
    /// What a reload did, and what it could not do while running.
    public struct ReloadOutcome: Sendable, Equatable {
        /// Changes applied: "web: added b4", "web: removed b2", "web: b1 weight 3", "web: algorithm
        /// least-connections", "web: timeouts", "web: outlier detection off".
        public var applied: [String] = []
        /// Changes that take a restart: listeners, admin, threads, services added or removed, and of a
        /// service's settings those that are not ``ServiceTunables``, by their keys in the file ("service
        /// web: limits").
        public var needsRestart: [String] = []
    }

    /// Takes up `configuration` (valid: ``ProxyConfiguration/problems()`` empty) while running: each
    /// service's backends become those of the file (added, removed, reweighted, moved), as the admin
    /// API would change them, and its ``ServiceTunables`` (every setting but its route) those of the
    /// file; requests in flight finish where they are, and the next request on each event loop goes by
    /// the new ones. What cannot change in a running proxy is left as it is and listed.
    public func reload(_ configuration: ProxyConfiguration) -> ReloadOutcome {
        var outcome = ReloadOutcome()
        let running = self.runtime.configuration
        if running.listeners != configuration.listeners { outcome.needsRestart.append("listeners") }
        if running.admin != configuration.admin { outcome.needsRestart.append("admin") }
        if running.threads != configuration.threads { outcome.needsRestart.append("threads") }
        if running.trustedProxies != configuration.trustedProxies { outcome.needsRestart.append("trusted-proxies") }
        if running.accessLog != configuration.accessLog { outcome.needsRestart.append("access-log") }
        let runningNames = Set(running.services.map(\.name))
        let newNames = Set(configuration.services.map(\.name))
        for name in newNames.subtracting(runningNames).sorted() { outcome.needsRestart.append("service \(name) (new)") }
        for name in runningNames.subtracting(newNames).sorted() { outcome.needsRestart.append("service \(name) (removed)") }
        for wanted in configuration.services {
            guard let service = self.runtime.service(named: wanted.name) else { continue }
            let fixed = service.settings
            var restart: [String] = []
            if wanted.route != fixed.route { restart.append("match") }
            // A setting none of the above names (one added to `Service` later) still shows.
            var unnamed = ServiceTunables(fixed).applied(to: wanted)
            unnamed.backends = fixed.backends
            if restart.isEmpty, unnamed != fixed { restart.append("settings") }
            for setting in restart { outcome.needsRestart.append("service \(wanted.name): \(setting)") }
            let tunables = ServiceTunables(wanted)
            let current = service.backends
            for backend in current {
                let kept = wanted.backends.first { $0.name == backend.spec.name }
                if kept == nil || kept!.address != backend.spec.address {
                    _ = try? service.remove(named: backend.spec.name)
                    outcome.applied.append("\(wanted.name): removed \(backend.spec.name)")
                }
            }
            for spec in wanted.backends {
                if let existing = service.backend(named: spec.name) {
                    if existing.spec.weight != spec.weight, (try? service.setWeight(spec.weight, of: spec.name)) != nil {
                        outcome.applied.append("\(wanted.name): \(spec.name) weight \(spec.weight)")
                    }
                } else if (try? service.add(spec)) != nil {
                    outcome.applied.append("\(wanted.name): added \(spec.name)")
                }
            }
            for change in service.retune(tunables) { outcome.applied.append("\(wanted.name): \(change)") }
        }
        self.runtime.retimeClientIdle()
        for line in outcome.applied { self.runtime.recorder?.event("reload", "proxy", ["change": line]) }
        return outcome
    }
}
