import LBConfig
import LBCore

extension Simulation {
    /// Gives the picker the backends in service with their weights now.
    func rebuild<P: Picker>(_ picker: inout P) {
        picker.rebuild(self.inService.map { Backend(state: self.backends[$0].state, weight: self.weights[$0]) })
    }

    /// One step of the fault timeline, at its time: what `lbctl run` does to a process (kill, stop,
    /// resume, restart), to a backend's settings (slow, errors, health) or through the proxy's admin API
    /// (weight, add, remove, drain). Recorded as an event, as a real run records it.
    func apply<P: Picker>(_ step: TimelineStep, _ picker: inout P) {
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
            self.backends[index].latency = latency
        case .errors(_, let rate):
            self.backends[index].errorRate = rate
        case .health(_, let healthy):
            self.backends[index].healthPathUp = healthy
        case .weight(_, let weight):
            self.weights[index] = Double(weight)
            self.rebuild(&picker)
        case .add:
            if !self.inService.contains(index) { self.inService.append(index) }
            self.rebuild(&picker)
        case .remove:
            self.inService.removeAll { $0 == index }
            self.rebuild(&picker)
        case .drain:
            self.backends[index].state.setDraining(true)
        }
    }

    /// SIGKILL: every request at the backend, waiting or served, loses its connection (the proxy
    /// answers 502), and new connections are refused until a restart.
    private func kill<P: Picker>(_ index: Int, _ picker: inout P) {
        var backend = self.backends[index]
        backend.running = false
        backend.stopped = false
        backend.epoch &+= 1
        backend.gate = CapacityGate(capacity: backend.spec.capacity, queueLimit: backend.spec.queue)
        backend.cpuQueue.removeAll()
        backend.cpuBusy = 0
        backend.frozen.removeAll()
        self.backends[index] = backend
        // Requests sent there and not yet answered: those whose epoch is the one before the kill.
        let lost = self.requests.slots.indices.filter { slot in
            let request = self.requests[slot]
            return !request.backendDone && request.backend == Int32(index) && request.epoch == backend.epoch &- 1
        }
        for slot in lost { self.backendAnswers(slot, status: 502, &picker) }
    }

    /// SIGCONT: what came due while the backend was stopped happens as long after the resume as it came
    /// after the stop.
    private func resume<P: Picker>(_ index: Int, _ picker: inout P) {
        self.backends[index].stopped = false
        let frozen = self.backends[index].frozen
        self.backends[index].frozen.removeAll()
        for (slot, kind, remaining) in frozen {
            if remaining <= 0 {
                switch kind {
                case .reachesBackend: self.reachesBackend(slot, &picker)
                case .cpuDone: self.cpuDone(slot, &picker)
                default: self.served(slot, &picker)
                }
            } else {
                self.events.schedule(kind, slot, at: self.now + remaining)
            }
        }
    }

    /// Every sample interval: each backend's CPU time and requests in flight, as `lbctl run` samples
    /// them; for `least-resources`, its CPU share of its limit published as the harness sends it.
    func sample<P: Picker>(_ picker: inout P) {
        let interval = self.scenario.sampleInterval.nanoseconds
        let micros = self.now / 1_000
        for index in self.backends.indices {
            let backend = self.backends[index]
            self.output.sample(
                ResourceSample(
                    tMicros: micros, source: backend.spec.name, cpuUsageMicros: backend.cpuNanos / 1_000,
                    inFlight: backend.state.inFlight
                ),
                tally: &self.tally, backend: index
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

    /// Requests still open when the run stops early: recorded as interrupted, as the load generator
    /// records them.
    func finishInterrupted() {
        // A slot is freed only once the client is done with it: every slot not done is an open request.
        for slot in self.requests.slots.indices where !self.requests[slot].clientDone {
            self.requests[slot].clientDone = true
            self.clientOpen -= 1
            self.output.clientDone(self.requests[slot], done: self.now, status: nil, error: .interrupted, tally: &self.tally, client: self.clientAddresses)
        }
    }
}
