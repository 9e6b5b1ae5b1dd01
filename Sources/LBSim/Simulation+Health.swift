import LBConfig
import LBCore

/// What the proxy decides about its backends' availability, as `lbctl proxy` does (HealthChecker,
/// ServiceRuntime's passive side): active health checks, outlier ejection, slow start.
extension Simulation {
    /// Backend `index` joins the proxy's service at `now` (at the start, or by an `add`): outlier
    /// detection watches it; with health checks it starts down when added later (as the proxy's admin
    /// API adds one) and is first probed within a second; without, it ramps up at once.
    mutating func proxyAdds(_ index: Int, now: Int64, probedAsDown: Bool) {
        self.outliers?.backendAdded(index, now: Instant(nanoseconds: now))
        if let check = self.service.health {
            self.backends[index].state.setHealthy(!probedAsDown)
            // The first probe's phase against the load is arbitrary in a real run: drawn, within an
            // interval at the start, and within the checker's one-second look for new backends.
            let window = probedAsDown ? Duration.seconds(1) : check.timing.interval
            let first = now + Int64(self.proxyGenerator.unitInterval() * Double(window.nanoseconds))
            self.proxyBackends[index].health = HealthCheckStateMachine(
                configuration: check.timing, initialState: probedAsDown ? .down : .up, now: Instant(nanoseconds: first)
            )
            self.events.schedule(.healthProbe, index, at: first)
        }
        if self.backends[index].state.isAvailable && now > 0 { self.startRamp(index) }
    }

    /// A health probe of backend `index` is due: what it will find is known now (the backend's state
    /// does not change within a probe's round trip in any scenario worth the name), and it comes back
    /// after the round trip, or not before its timeout.
    mutating func probeDue(_ index: Int) {
        guard var machine = self.proxyBackends[index].health, self.inService.contains(index) else { return }
        let action = machine.probeDue(now: Instant(nanoseconds: self.now))
        self.proxyBackends[index].health = machine
        guard case .sendProbe(let deadline) = action, let check = self.service.health else {
            if case .wait(let until) = action { self.events.schedule(.healthProbe, index, at: until.nanoseconds) }
            return
        }
        let backend = self.backends[index]
        let roundTrip = self.draw(self.proxyToBackend) + self.draw(self.proxyToBackend)
        let outcome: Bool?
        if !backend.running {
            outcome = false  // refused
        } else if backend.stopped {
            // A connect is answered by the kernel; an HTTP request by nobody.
            if case .tcp = check.probe { outcome = true } else { outcome = nil }
        } else if case .http = check.probe {
            outcome = backend.healthPathUp
        } else {
            outcome = true
        }
        self.proxyBackends[index].probeOutcome = outcome
        let answered = self.now + roundTrip
        self.events.schedule(.healthProbeDone, index, at: outcome == nil ? deadline.nanoseconds : min(answered, deadline.nanoseconds))
    }

    /// A probe of backend `index` came back (or timed out): the machine says whether the backend went
    /// up or down, as the proxy records it (`health_up`, `health_down`), and when to probe next.
    mutating func probeAnswered<P: Picker>(_ index: Int, _ picker: inout P) {
        guard var machine = self.proxyBackends[index].health, self.inService.contains(index) else { return }
        let now = Instant(nanoseconds: self.now)
        let action: HealthCheckStateMachine.ProbeResultAction
        switch self.proxyBackends[index].probeOutcome {
        case .some(true): action = machine.probeSucceeded(now: now)
        case .some(false): action = machine.probeFailed(now: now)
        case .none: action = machine.probeTimedOut(now: now)
        }
        self.proxyBackends[index].health = machine
        if let transition = action.transition, let check = self.service.health {
            let isUp = transition == .wentUp
            self.backends[index].state.setHealthy(isUp)
            self.output.event(
                isUp ? "health_up" : "health_down", subject: self.backends[index].spec.name,
                detail: ["service": self.service.name, "probes": "\(isUp ? check.timing.rise : check.timing.fall)"], at: self.now
            )
            if isUp { self.startRamp(index) }
        }
        self.events.schedule(.healthProbe, index, at: action.nextProbeAt.nanoseconds)
    }

    // MARK: Outlier detection

    mutating func outlierSucceeded(_ index: Int) {
        self.outliers?.requestSucceeded(index)
    }

    /// An attempt on backend `index` failed: outlier detection may eject it (`ejected`), until its
    /// ejection ends.
    mutating func outlierFailed<P: Picker>(_ index: Int, _ picker: inout P) {
        guard self.outliers != nil else { return }
        let now = Instant(nanoseconds: self.now)
        guard case .eject(_, let until) = self.outliers!.requestFailed(index, now: now) else { return }
        self.backends[index].state.setEjected(true)
        self.output.event(
            "ejected", subject: self.backends[index].spec.name, detail: ["service": self.service.name, "for": GoDuration.format(until - now)],
            at: self.now
        )
        self.scheduleReadmission()
    }

    private mutating func scheduleReadmission() {
        guard !self.readmitScheduled, let next = self.outliers?.nextReadmissionAt else { return }
        self.readmitScheduled = true
        self.events.schedule(.readmit, 0, at: next.nanoseconds)
    }

    /// Readmits the backends whose ejection has ended (`readmitted`); they ramp up under slow start.
    mutating func readmitDue<P: Picker>(_ picker: inout P) {
        self.readmitScheduled = false
        let readmitted = self.outliers?.readmitDue(now: Instant(nanoseconds: self.now)) ?? []
        for index in readmitted {
            self.backends[index].state.setEjected(false)
            self.output.event("readmitted", subject: self.backends[index].spec.name, detail: ["service": self.service.name], at: self.now)
            self.startRamp(index)
        }
        self.scheduleReadmission()
    }

    // MARK: Slow start

    /// Backend `index` became available: with slow start on, its weight ramps from now.
    mutating func startRamp(_ index: Int) {
        guard self.service.slowStart.window > .zero else { return }
        self.proxyBackends[index].rampingSince = self.now
        if !self.rampScheduled {
            self.rampScheduled = true
            self.events.schedule(.rampStep, 0, at: self.now)
        }
    }

    /// Every slow-start step while a backend ramps: the picker is rebuilt with the weights now.
    mutating func rampStep<P: Picker>(_ picker: inout P) {
        self.rampScheduled = false
        self.rebuild(&picker)
        let slowStart = self.service.slowStart
        let ramping = self.proxyBackends.contains { backend in
            backend.rampingSince.map { slowStart.isRamping(since: Instant(nanoseconds: $0), now: Instant(nanoseconds: self.now)) } ?? false
        }
        if ramping {
            self.rampScheduled = true
            self.events.schedule(.rampStep, 0, at: self.now + slowStart.step.nanoseconds)
        }
    }

    /// Gives the picker the backends in service with their weights now (lowered while slow start ramps
    /// them up).
    mutating func rebuild<P: Picker>(_ picker: inout P) {
        let now = Instant(nanoseconds: self.now)
        let slowStart = self.service.slowStart
        picker.rebuild(
            self.inService.map { index in
                var weight = self.weights[index]
                if let since = self.proxyBackends[index].rampingSince, slowStart.isRamping(since: Instant(nanoseconds: since), now: now) {
                    weight = slowStart.effectiveWeight(weight, since: Instant(nanoseconds: since), now: now)
                }
                return Backend(state: self.backends[index].state, weight: weight)
            }
        )
    }
}
