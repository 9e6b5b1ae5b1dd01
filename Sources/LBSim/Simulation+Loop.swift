import LBConfig
import LBCore

extension Simulation {
    /// The event loop, specialized for the picker's type: arrivals come from the schedule, everything
    /// else from the event queue, and clients' timeouts from their FIFO of deadlines (one timeout for
    /// every request, in due order, needs no heap).
    func run<P: Picker>(picker: P, progressEvery: Int, progress: (SimProgress) -> Bool) -> SimOutcome {
        var picker = picker
        self.rebuild(&picker)
        self.events.schedule(.sample, 0, at: self.scenario.sampleInterval.nanoseconds)
        for (index, step) in self.scenario.timeline.enumerated() where step.at < self.settings.duration {
            self.events.schedule(.timeline, index, at: step.at.nanoseconds)
        }
        var processed = 0
        var nextProgress = progressEvery
        var completed = true
        var drained = false
        while true {
            let arrival = self.schedule.nextDueNanos
            let event = self.events.nextTime
            let deadline = self.clientDeadlineHead < self.clientDeadlines.count ? self.clientDeadlines[self.clientDeadlineHead].deadline : nil
            // The earliest of the three; at the same time, a deadline, then events, then arrivals.
            if let deadline, deadline <= (event ?? .max), deadline <= (arrival ?? .max) {
                self.now = deadline
                self.clientGivesUp()
                continue
            }
            if let arrival, arrival < (event ?? .max) {
                self.now = arrival
                let due = self.schedule.next()!
                self.arrive(client: due.client, &picker)
                if Int(self.nextRequestID) >= nextProgress {
                    nextProgress += progressEvery
                    let going = progress(SimProgress(virtualTime: .nanoseconds(self.now), requests: Int(self.nextRequestID), duration: self.settings.duration))
                    if !going {
                        completed = false
                        break
                    }
                }
                continue
            }
            if !drained && arrival == nil {
                drained = true
                self.output.phase("drain", at: max(self.now, self.settings.duration.nanoseconds))
            }
            // The schedule is over: the run ends when every request is answered or given up on.
            if arrival == nil && self.clientOpen == 0 { break }
            guard let next = self.events.next() else { break }
            self.now = next.time
            processed += 1
            self.handle(next, &picker)
        }
        if !drained { self.output.phase("drain", at: self.now) }
        self.finishInterrupted()
        self.output.phase("stop", at: self.now)
        self.output.flush()
        return SimOutcome(
            completed: completed, requests: Int(self.nextRequestID), events: processed,
            virtualTime: .nanoseconds(self.now), tally: self.tally
        )
    }

    private func handle<P: Picker>(_ event: SimEvent, _ picker: inout P) {
        let subject = event.subject
        switch event.kind {
        case .reachesProxy: self.reachesProxy(subject, &picker)
        case .reachesBackend: self.reachesBackend(subject, &picker)
        case .cpuDone: self.cpuDone(subject, &picker)
        case .served: self.served(subject, &picker)
        case .answerReachesProxy: self.answerReachesProxy(subject, &picker)
        case .answerReachesClient: self.answerReachesClient(subject)
        case .sample: self.sample(&picker)
        case .timeline: self.apply(self.scenario.timeline[subject], &picker)
        case .attemptTimeout, .healthProbe, .healthProbeDone, .retry: break
        }
    }

    // MARK: Client

    private func arrive<P: Picker>(client: Int, _ picker: inout P) {
        let id = self.nextRequestID
        self.nextRequestID += 1
        let key = self.keys.map { Int32($0.next(using: &self.keyGenerator)) } ?? -1
        let slot = self.requests.insert(SimRequest(id: id, client: Int32(client), key: key, intended: self.now))
        self.clientOpen += 1
        self.clientDeadlines.append((self.now + self.clientTimeout, Int32(slot), id))
        self.after(self.delays.clientToProxy, .reachesProxy, slot) { this in this.reachesProxy(slot, &picker) }
    }

    /// The client's timeout of the oldest request still waiting: a request not yet answered is given up
    /// (`timeout`); its slot stays until no backend event names it.
    private func clientGivesUp() {
        let (_, slot32, id) = self.clientDeadlines[self.clientDeadlineHead]
        self.clientDeadlineHead += 1
        if self.clientDeadlineHead >= 4_096 && self.clientDeadlineHead * 2 >= self.clientDeadlines.count {
            self.clientDeadlines.removeFirst(self.clientDeadlineHead)
            self.clientDeadlineHead = 0
        }
        let slot = Int(slot32)
        guard self.requests[slot].id == id, !self.requests[slot].clientDone else { return }
        self.requests[slot].clientDone = true
        self.clientOpen -= 1
        self.output.clientDone(self.requests[slot], done: self.now, status: nil, error: .timedOut, tally: &self.tally, client: self.clientAddresses)
        self.requests.releaseIfDone(slot)
    }

    private func answerReachesClient(_ slot: Int) {
        guard !self.requests[slot].clientDone else {
            self.requests.releaseIfDone(slot)
            return
        }
        self.requests[slot].clientDone = true
        self.clientOpen -= 1
        let request = self.requests[slot]
        self.output.clientDone(request, done: self.now, status: Int(request.status), error: nil, tally: &self.tally, client: self.clientAddresses)
        self.requests.releaseIfDone(slot)
    }

    // MARK: Proxy

    private func reachesProxy<P: Picker>(_ slot: Int, _ picker: inout P) {
        let request = self.requests[slot]
        let pick = PickRequest(
            now: Instant(nanoseconds: self.now),
            clientKey: self.clientKeys[Int(request.client)],
            hashKey: self.hashKey(of: request)
        )
        self.requests[slot].received = self.now
        self.requests[slot].picked = self.now
        guard let chosen = picker.pick(pick) else {
            // No backend available: the proxy answers 503 itself.
            self.requests[slot].status = 503
            self.requests[slot].backendDone = true
            self.output.proxyDone(self.requests[slot], attempts: 1, clientIP: self.clientAddresses[Int(self.requests[slot].client)])
            self.after(self.delays.proxyToClient, .answerReachesClient, slot) { this in this.answerReachesClient(slot) }
            return
        }
        let backend = self.inService[chosen]
        self.backends[backend].state.requestStarted()
        self.requests[slot].backend = Int32(backend)
        self.requests[slot].epoch = self.backends[backend].epoch
        self.after(self.delays.proxyToBackend, .reachesBackend, slot) { this in this.reachesBackend(slot, &picker) }
    }

    func answerReachesProxy<P: Picker>(_ slot: Int, _ picker: inout P) {
        let backend = Int(self.requests[slot].backend)
        let state = self.backends[backend].state
        state.requestFinished()
        self.requests[slot].upstreamDone = self.now
        self.requests[slot].backendDone = true
        picker.requestFinished(on: state, latency: .nanoseconds(self.now - self.requests[slot].picked), now: Instant(nanoseconds: self.now))
        self.output.proxyDone(self.requests[slot], attempts: 1, clientIP: self.clientAddresses[Int(self.requests[slot].client)])
        self.after(self.delays.proxyToClient, .answerReachesClient, slot) { this in this.answerReachesClient(slot) }
    }

    /// The hash a hash-based picker places `request` by, as the proxy computes it for the service's
    /// `hash-key`: the client's address, the key the load generator sends in `X-LBLab-Key`, or the path.
    private func hashKey(of request: SimRequest) -> UInt64? {
        switch self.service.hashKey {
        case .clientIP: return self.clientKeys[Int(request.client)]
        case .header(let name) where name.lowercased() == "x-lblab-key":
            return request.key >= 0 ? self.keyHashes[Int(request.key)] : nil
        case .path: return self.pathHash
        case .header, .cookie: return nil
        }
    }

    // MARK: Backend

    func reachesBackend<P: Picker>(_ slot: Int, _ picker: inout P) {
        let index = Int(self.requests[slot].backend)
        guard self.requests[slot].epoch == self.backends[index].epoch else { return }
        self.requests[slot].upstreamStart = self.now
        guard self.backends[index].running else {
            // Refused: the proxy's connect fails and it answers 502.
            self.backendAnswers(slot, status: 502, &picker)
            return
        }
        if self.backends[index].stopped {
            self.backends[index].frozen.append((slot, .reachesBackend, self.now - self.backends[index].stoppedAt))
            return
        }
        switch self.backends[index].gate.requestArrived(Int32(slot)) {
        case .serve: self.startService(slot, on: index, &picker)
        case .queued: break
        case .refuse: self.backendAnswers(slot, status: 503, &picker)
        }
    }

    /// A request that holds a place: its CPU work (waiting for a thread), then its latency.
    private func startService<P: Picker>(_ slot: Int, on index: Int, _ picker: inout P) {
        var backend = self.backends[index]
        let latency = backend.latency.sample(using: &backend.generator).nanoseconds
        let fails = backend.drawsError()
        if backend.spec.cpuWork > .zero {
            if backend.cpuBusy < backend.spec.threads {
                backend.cpuBusy += 1
                self.events.schedule(.cpuDone, slot, at: self.now + backend.cpuNanosPerRequest)
            } else {
                backend.cpuQueue.append(Int32(slot))
            }
        }
        let cpu = backend.spec.cpuWork > .zero
        self.backends[index] = backend
        self.requests[slot].latency = latency
        self.requests[slot].cpu = cpu ? backend.cpuNanosPerRequest : 0
        self.requests[slot].fails = fails
        if !cpu { self.afterLatency(slot, &picker) }
    }

    func cpuDone<P: Picker>(_ slot: Int, _ picker: inout P) {
        let index = Int(self.requests[slot].backend)
        guard self.requests[slot].epoch == self.backends[index].epoch else { return }
        if self.backends[index].stopped {
            self.backends[index].frozen.append((slot, .cpuDone, self.now - self.backends[index].stoppedAt))
            return
        }
        let work = self.backends[index].cpuNanosPerRequest
        self.backends[index].cpuNanos += Int64((Double(work) * self.backends[index].cpuSpeed).rounded())
        if let next = self.backends[index].cpuQueue.popFirst() {
            self.events.schedule(.cpuDone, Int(next), at: self.now + work)
        } else {
            self.backends[index].cpuBusy -= 1
        }
        self.afterLatency(slot, &picker)
    }

    private func afterLatency<P: Picker>(_ slot: Int, _ picker: inout P) {
        let latency = self.requests[slot].latency
        if latency <= 0 {
            self.served(slot, &picker)
        } else {
            self.events.schedule(.served, slot, at: self.now + latency)
        }
    }

    func served<P: Picker>(_ slot: Int, _ picker: inout P) {
        let index = Int(self.requests[slot].backend)
        guard self.requests[slot].epoch == self.backends[index].epoch else { return }
        if self.backends[index].stopped {
            self.backends[index].frozen.append((slot, .served, self.now - self.backends[index].stoppedAt))
            return
        }
        self.backends[index].served += 1
        if let next = self.backends[index].gate.requestFinished() {
            self.startService(Int(next), on: index, &picker)
        }
        self.backendAnswers(slot, status: self.requests[slot].fails ? 500 : 200, &picker)
    }

    /// The backend's answer `status` leaves for the proxy.
    func backendAnswers<P: Picker>(_ slot: Int, status: Int16, _ picker: inout P) {
        self.requests[slot].status = status
        // No backend event names the request any more (a kill or a stop no longer concerns it).
        self.requests[slot].epoch = -1
        self.after(self.delays.proxyToBackend, .answerReachesProxy, slot) { this in this.answerReachesProxy(slot, &picker) }
    }

    // MARK: Time

    /// Runs `body` now when `delay` draws zero, else schedules `kind` about `subject` after the drawn
    /// delay.
    func after(_ delay: LatencyModel, _ kind: SimEventKind, _ subject: Int, _ body: (Simulation) -> Void) {
        let nanos: Int64
        if case .fixed(let fixed) = delay {
            nanos = fixed.nanoseconds
        } else {
            nanos = delay.sample(using: &self.delayGenerator).nanoseconds
        }
        if nanos <= 0 {
            body(self)
        } else {
            self.events.schedule(kind, subject, at: self.now + nanos)
        }
    }
}
