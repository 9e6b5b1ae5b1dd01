import LBConfig
import LBCore

extension Simulation {
    /// One step of the fault timeline, at its time: what `lbctl run` does to a process (kill, stop,
    /// resume, restart), to a backend's settings (slow, errors, health) or through the proxy's admin API
    /// (weight, add, remove, drain). Recorded as an event, as a real run records it.
    mutating func apply<P: Picker>(_ step: TimelineStep, _ picker: inout P) {
        let name = step.action.backend
        guard let index = self.backends.firstIndex(where: { $0.spec.name == name }) else { return }
        self.output.event(step.action.kind, subject: name, detail: step.action.detail, at: self.now)
        switch step.action {
        case .kill:
            self.kill(index, &picker)
        case .stop:
            self.backends[index].stopped = true
            self.backends[index].stoppedAt = self.now
        case .resume:
            self.resume(index, &picker)
        case .restart:
            self.backends[index].running = true
            self.backends[index].stopped = false
        case .slow(_, let latency):
            self.backends[index].latency = LatencySampler(latency)
        case .errors(_, let rate):
            self.backends[index].errorRate = rate
        case .health(_, let healthy):
            self.backends[index].healthPathUp = healthy
        case .weight(_, let weight):
            self.weights[index] = Double(weight)
            self.rebuild(&picker)
        case .add:
            if !self.inService.contains(index) {
                self.inService.append(index)
                self.proxyAdds(index, now: self.now, probedAsDown: true)
            }
            self.rebuild(&picker)
        case .remove:
            self.inService.removeAll { $0 == index }
            self.outliers?.backendRemoved(index)
            self.proxyBackends[index].health = nil
            self.rebuild(&picker)
        case .drain:
            self.backends[index].state.setDraining(true)
        }
    }

    /// Every sample interval: each backend's CPU time and requests in flight, as `lbctl run` samples
    /// them; for `least-resources`, its CPU share of its limit published as the harness sends it.
    mutating func sample<P: Picker>(_ picker: inout P) {
        let interval = self.scenario.sampleInterval.nanoseconds
        let micros = self.now / 1_000
        for index in self.backends.indices {
            let backend = self.backends[index]
            self.output.sample(
                ResourceSample(
                    tMicros: micros, source: backend.spec.name, cpuUsageMicros: backend.cpuNanos / 1_000,
                    inFlight: backend.state.inFlight
                ),
                tally: &self.tally
            )
            if self.entry.algorithm == .leastResources {
                let used = Double(backend.cpuNanos - self.lastCPUNanos[index])
                let cores = backend.spec.cpuLimit ?? Double(backend.spec.threads)
                backend.state.setResourceUsage(used / (Double(interval) * cores), now: Instant(nanoseconds: self.now))
            }
            self.lastCPUNanos[index] = backend.cpuNanos
        }
        if self.clientOpen > 0 || self.schedule.nextDueNanos != nil {
            self.events.schedule(.sample, 0, at: self.now + interval)
        }
    }
}
