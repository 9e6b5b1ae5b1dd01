import LBConfig
import LBCore

extension Simulation {
    /// The event loop, specialized for the picker's type: arrivals come from the schedule, timeouts from
    /// their queues of deadlines, everything else from the event queue.
    mutating func run<P: Picker>(picker: P, progressEvery: Int, progress: (SimProgress) -> Bool) -> SimOutcome {
        var picker = picker
        self.start(&picker)
        var processed = 0
        var nextProgress = progressEvery
        var completed = true
        var drained = false
        var drainedAt: Int64 = 0
        // The next arrival's time, read again only when it is taken.
        var arrival = self.schedule.nextDueNanos ?? .max
        while true {
            // The schedule is over: the run ends when every request is answered or given up on.
            if arrival == .max && self.clientOpen == 0 { break }
            let event = self.events.nextTime ?? .max
            // Timeouts first at the same instant, then events, then arrivals.
            let deadline = min(self.clientDeadlines.next ?? .max, self.headerDeadlines.next ?? .max, self.queueDeadlines.next ?? .max)
            if deadline != .max, deadline <= event, deadline <= arrival {
                self.now = deadline
                self.deadlinePassed(&picker)
                continue
            }
            if !drained && arrival == .max {
                // The schedule is over: at its duration, or at its last request when it had a limit.
                drained = true
                let limited = self.settings.requestLimit.map { Int(self.nextRequestID) >= $0 } ?? false
                drainedAt = limited ? self.now : max(self.now, self.settings.duration.nanoseconds)
                self.output.phase("drain", at: drainedAt)
            }
            if arrival < event {
                self.now = arrival
                let due = self.schedule.next()!
                arrival = self.schedule.nextDueNanos ?? .max
                self.arrive(client: due.client, &picker)
                if Int(self.nextRequestID) >= nextProgress {
                    nextProgress += progressEvery
                    let report = SimProgress(virtualTime: .nanoseconds(self.now), requests: Int(self.nextRequestID), duration: self.settings.duration)
                    if !progress(report) {
                        completed = false
                        break
                    }
                }
                continue
            }
            guard let next = self.events.next() else { break }
            self.now = next.time
            processed += 1
            self.handle(next, &picker)
        }
        if !drained {
            drainedAt = self.now
            self.output.phase("drain", at: drainedAt)
        }
        // The run stops when the last request is done, and not before the schedule's end.
        self.now = max(self.now, drainedAt)
        self.finishInterrupted()
        for client in self.webSockets.indices { self.close(client) }
        self.output.phase("stop", at: self.now)
        self.output.flush()
        return SimOutcome(
            completed: completed, requests: Int(self.nextRequestID), events: processed,
            virtualTime: .nanoseconds(self.now), tally: self.tally, totals: self.output.totals?.finish()
        )
    }

    /// The first events: samples, the timeline, health checks.
    private mutating func start<P: Picker>(_ picker: inout P) {
        for index in self.inService { self.proxyAdds(index, now: 0, probedAsDown: false) }
        self.rebuild(&picker)
        self.events.schedule(.sample, 0, at: self.scenario.sampleInterval.nanoseconds)
        for (index, step) in self.scenario.timeline.enumerated() where step.at < self.settings.duration {
            self.events.schedule(.timeline, index, at: step.at.nanoseconds)
        }
    }

    private mutating func handle<P: Picker>(_ event: SimEvent, _ picker: inout P) {
        let subject = event.subject
        switch event.kind {
        case .reachesProxy: self.reachesProxy(subject, &picker)
        case .reachesBackend: if self.jobEventArrives(subject) { self.reachesBackend(subject, &picker) }
        case .cpuDone:
            self.releaseCore(subject)
            if self.jobEventArrives(subject) { self.cpuDone(subject, &picker) }
        case .coreFreed:
            self.releaseCore(subject)
            _ = self.jobEventArrives(subject)
        case .sliceEnd:
            let yielded = self.releaseCore(subject)
            if self.jobEventArrives(subject) { self.sliceEnded(subject, yielded: yielded) }
        case .served: if self.jobEventArrives(subject) { self.served(subject, &picker) }
        case .answerReachesProxy: if self.jobEventArrives(subject) { self.answerReachesProxy(subject, &picker) }
        case .answerReachesClient:
            if self.webSockets.isEmpty { self.answerReachesClient(subject) } else { self.echoReachesClient(subject) }
        case .retry: self.startAttempt(subject, &picker)
        case .sample: self.sample(&picker)
        case .timeline: self.apply(self.scenario.timeline[subject], &picker)
        case .healthProbe: self.probeDue(subject)
        case .healthProbeDone: self.probeAnswered(subject, &picker)
        case .readmit: self.readmitDue(&picker)
        case .rampStep: self.rampStep(&picker)
        }
    }

    /// The earliest deadline passed: a client gives up, an attempt's response header is late, or a
    /// wait for a place under the connection limit is over.
    private mutating func deadlinePassed<P: Picker>(_ picker: inout P) {
        if self.clientDeadlines.next == self.now {
            let (slot, id) = self.clientDeadlines.pop()
            self.clientGivesUp(Int(slot), id: id)
        } else if self.headerDeadlines.next == self.now {
            let (slot, attempt) = self.headerDeadlines.pop()
            self.responseTimedOut(Int(slot), attempt: attempt, &picker)
        } else {
            let (slot, attempt) = self.queueDeadlines.pop()
            self.queueTimedOut(Int(slot), attempt: attempt, &picker)
        }
    }

    // MARK: Client

    private mutating func arrive<P: Picker>(client: Int, _ picker: inout P) {
        let id = self.nextRequestID
        self.nextRequestID += 1
        let key = self.keys.map { Int32($0.next(using: &self.keyGenerator)) } ?? -1
        let slot = self.requests.insert(SimRequest(id: id, client: Int32(client), key: key, intended: self.now))
        self.clientOpen += 1
        self.output.totals?.due(self.now)
        self.clientDeadlines.append(self.now + self.clientTimeout, (Int32(slot), id))
        if self.clientDeadlines.needsCompacting(live: self.requests.live) {
            let requests = self.requests
            self.clientDeadlines.compact(live: requests.live) { requests[Int($0.slot)].id != $0.id || requests[Int($0.slot)].clientDone }
        }
        guard self.webSockets.isEmpty else {
            self.sendMessage(slot, client: client, &picker)
            return
        }
        // The client's hops are measured as a whole on real runs of the scenario (`lbctl report`'s
        // hops), their threads' waits for cores included: no wait is added to them.
        let delay = self.draw(self.clientToProxy)
        if delay <= 0 {
            self.reachesProxy(slot, &picker)
        } else {
            self.events.schedule(.reachesProxy, slot, at: self.now + delay)
        }
    }

    /// The client's timeout of a request: one not yet answered is given up (`timeout`); the proxy may
    /// still be at work on it.
    private mutating func clientGivesUp(_ slot: Int, id: Int64) {
        guard self.requests[slot].id == id, !self.requests[slot].clientDone else { return }
        self.clientFinishes(slot, status: nil, error: .timedOut)
    }

    @inline(__always)
    mutating func answerReachesClient(_ slot: Int) {
        let request = self.requests[slot]
        if request.clientDone {
            self.releaseIfDone(slot)
        } else {
            self.clientFinishes(slot, status: Int(request.status), error: nil)
        }
    }

    @inline(__always)
    mutating func clientFinishes(_ slot: Int, status: Int?, error: RequestFailure?) {
        self.requests[slot].clientDone = true
        self.clientOpen -= 1
        self.output.clientDone(self.requests[slot], done: self.now, status: status, error: error, tally: &self.tally, client: self.clientAddresses)
        self.releaseIfDone(slot)
    }

    /// Frees a request's slot once the client and the proxy are both done with it.
    @inline(__always)
    mutating func releaseIfDone(_ slot: Int) {
        if self.requests[slot].clientDone && self.requests[slot].proxyDone { self.requests.remove(slot) }
    }

    /// Requests still open when the run stops early: recorded as interrupted, as the load generator
    /// records them.
    mutating func finishInterrupted() {
        for slot in 0..<self.requests.count where !self.requests[slot].clientDone && self.requests[slot].id >= 0 {
            guard self.clientOpen > 0 else { break }
            self.requests[slot].clientDone = true
            self.clientOpen -= 1
            self.output.clientDone(self.requests[slot], done: self.now, status: nil, error: .interrupted, tally: &self.tally, client: self.clientAddresses)
        }
    }

    // MARK: Time

    /// A delay drawn from `delay`, in nanoseconds.
    @inline(__always)
    mutating func draw(_ delay: LatencySampler) -> Int64 {
        delay.nanoseconds(using: &self.delayGenerator)
    }

    /// The time a request or an answer takes between the proxy and a backend: the `wakeups` threads that
    /// take it on may wait for cores first (``coreWait(wakeups:)``), then the hop's delay.
    @inline(__always)
    mutating func hop(_ delay: LatencySampler, wakeups: Int) -> Int64 {
        self.coreWait(wakeups: wakeups) + self.draw(delay)
    }
}
