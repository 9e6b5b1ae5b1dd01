public import LBConfig

extension ProxyServer {
    /// What a reload did, and what it could not do while running.
    public struct ReloadOutcome: Sendable, Equatable {
        /// Changes applied: "web: added b4", "web: removed b2", "web: b1 weight 3", "web: algorithm
        /// least-connections", "web: timeouts", "web: outlier detection off".
        public var applied: [String] = []
        /// Changes that take a restart: "threads", "access-log" (turned on or off; a path is opened
        /// again by every reload, so that a rotated log starts anew), and a setting of a service that no
        /// reload knows of ("service web: settings").
        public var needsRestart: [String] = []
        /// Changes tried and failed, with why and what stays: an access log that cannot be opened, an
        /// address that cannot be listened on, an admin API that cannot move.
        public var failed: [String] = []
    }

    /// Takes up `configuration` (valid: ``ProxyConfiguration/problems()`` empty) while running:
    /// services it adds start, services it drops are retired (requests in flight on them finish), routes
    /// and trusted proxies become its own, each service's backends become those of the file (added,
    /// removed, reweighted, moved) as the admin API would change them, and its ``ServiceTunables``
    /// (every setting but its route) those of the file. Listeners it adds listen, then those it drops
    /// stop accepting (the connections they took go on; none stops when an added one cannot listen); a
    /// changed admin section moves the admin API, which then requires `adminToken`. Requests in flight finish where they are; the next
    /// request on each event loop goes by the new configuration. The number of event loops cannot
    /// change in a running proxy, nor can the access log be turned on or off: those are listed.
    ///
    /// One reload at a time: the caller waits for one to end before it starts the next.
    public func reload(_ configuration: ProxyConfiguration, adminToken: String? = nil) async -> ReloadOutcome {
        var outcome = ReloadOutcome()
        let running = self.runtime.configuration
        if running.threads != configuration.threads { outcome.needsRestart.append("threads") }
        var taken = configuration
        taken.accessLog = self.reopenAccessLog(running.accessLog, as: configuration.accessLog, &outcome)
        for wanted in configuration.services {
            guard let service = self.runtime.service(named: wanted.name),
                let fixed = running.services.first(where: { $0.name == wanted.name })
            else { continue }
            Self.reload(service, from: fixed, to: wanted, &outcome)
        }
        let (started, retired) = self.runtime.rearrange(taken)
        for name in started { outcome.applied.append("added service \(name)") }
        for service in retired {
            service.forgetMetrics()
            outcome.applied.append("removed service \(service.settings.name)")
        }
        if running.trustedProxies != configuration.trustedProxies { outcome.applied.append("trusted-proxies") }
        if running.yieldInterval != configuration.yieldInterval { outcome.applied.append("yield-interval") }
        self.runtime.retimeClientIdle()
        guard self.isStarted.load(ordering: .relaxed) else {
            // Not listening yet: the start binds what the file says.
            self.runtime.serving(listeners: configuration.listeners, admin: configuration.admin)
            return self.recorded(outcome)
        }
        await self.relisten(configuration.listeners, &outcome)
        let admin = await self.moveAdmin(from: running.admin, to: configuration.admin, token: adminToken, &outcome)
        // What it listens as: the file's listeners that listen, and those a failure kept.
        let bound = self.listening
        let listeners = configuration.listeners.filter(bound.contains) + bound.filter { !configuration.listeners.contains($0) }
        self.runtime.serving(listeners: listeners, admin: admin)
        return self.recorded(outcome)
    }

    /// Opens the access log again at `path` (whatever it is: after a log rotation, the same path is a
    /// new file); returns the path written to from now.
    private func reopenAccessLog(_ old: String?, as path: String?, _ outcome: inout ReloadOutcome) -> String? {
        switch (old, path, self.runtime.recorder?.accessLog) {
        case (let old?, let path?, let log?):
            do {
                try log.reopen(path)
                outcome.applied.append(old == path ? "access-log reopened" : "access-log \(path)")
                return path
            } catch {
                outcome.failed.append("\(error); the access log goes on to \(old)")
                return old
            }
        case (nil, nil, _):
            return nil
        default:
            outcome.needsRestart.append("access-log")
            return old
        }
    }

    /// Takes the running `service`, configured as `fixed`, to `wanted`: its backends as the admin API
    /// would change them, then its tunables.
    private static func reload(_ service: ServiceRuntime, from fixed: Service, to wanted: Service, _ outcome: inout ReloadOutcome) {
        if wanted.route != fixed.route { outcome.applied.append("\(wanted.name): match") }
        // A setting that is neither the route, the backends nor a tunable (one added to `Service`
        // later) still shows.
        var unnamed = ServiceTunables(fixed).applied(to: wanted)
        unnamed.backends = fixed.backends
        unnamed.route = fixed.route
        if unnamed != fixed { outcome.needsRestart.append("service \(wanted.name): settings") }
        for backend in service.backends {
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
        for change in service.retune(ServiceTunables(wanted)) { outcome.applied.append("\(wanted.name): \(change)") }
    }

    /// Listens as `listeners` says. New addresses listen first; the listeners it drops close only when
    /// all of those do, so that a reload whose address is taken leaves the proxy listening where it did
    /// (and says why). A listener that changes what it does on an address it keeps (HTTP to TCP, or to
    /// another service) closes and listens again; if it cannot, the old one listens again.
    private func relisten(_ listeners: [ProxyConfiguration.Listener], _ outcome: inout ReloadOutcome) async {
        let listening = self.listening
        let dropped = listening.filter { !listeners.contains($0) }
        let added = listeners.filter { !listening.contains($0) }
        let freed = Set(dropped.map(\.address))
        var failures: [String] = []
        for listener in added where !freed.contains(listener.address) {
            do {
                try await self.bind(listener)
                outcome.applied.append("listening on \(Self.describe(listener))")
            } catch {
                failures.append("cannot listen on \(Self.describe(listener)): \(error)")
            }
        }
        guard failures.isEmpty else {
            let kept = dropped.map(Self.describe).joined(separator: ", ")
            outcome.failed += failures.map { dropped.isEmpty ? $0 : "\($0); still listening on \(kept)" }
            return
        }
        for listener in dropped {
            await self.unbind(listener)
            outcome.applied.append("stopped listening on \(Self.describe(listener))")
        }
        for listener in added where freed.contains(listener.address) {
            do {
                try await self.bind(listener)
                outcome.applied.append("listening on \(Self.describe(listener))")
            } catch {
                let old = dropped.first { $0.address == listener.address }!
                let back = (try? await self.bind(old)) != nil
                if back { outcome.applied.removeAll { $0 == "stopped listening on \(Self.describe(old))" } }
                outcome.failed.append(
                    "cannot listen on \(Self.describe(listener)): \(error)" + (back ? "; still listening on \(Self.describe(old))" : "")
                )
            }
        }
    }

    /// Moves the admin API from `old` to `new` when they differ; returns where it serves from now.
    private func moveAdmin(
        from old: ProxyConfiguration.Admin,
        to new: ProxyConfiguration.Admin,
        token: String?,
        _ outcome: inout ReloadOutcome
    ) async -> ProxyConfiguration.Admin {
        guard new != old else { return old }
        do {
            try await self.startAdmin(new, token: token)
            outcome.applied.append("admin on \(new.address)")
            return new
        } catch {
            outcome.failed.append("cannot move the admin API to \(new.address): \(error); it stays on \(old.address)")
            return old
        }
    }

    /// `outcome`, once its changes are recorded as events.
    private func recorded(_ outcome: ReloadOutcome) -> ReloadOutcome {
        for line in outcome.applied { self.runtime.recorder?.event("reload", "proxy", ["change": line]) }
        return outcome
    }

    private static func describe(_ listener: ProxyConfiguration.Listener) -> String {
        switch listener.mode {
        case .http: "\(listener.address)"
        case .tcp: "\(listener.address) (tcp to \(listener.service ?? "?"))"
        }
    }
}
