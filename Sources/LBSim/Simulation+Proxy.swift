import LBConfig
import LBCore

/// The proxy's side of a request, as `lbctl proxy` handles it (ProxyHTTPHandler and its upstream
/// extension): attempts, the connection limit, the response-header timeout, retries and requeues, the
/// answer.
extension Simulation {
    @inline(__always)
    mutating func reachesProxy<P: Picker>(_ slot: Int, _ picker: inout P) {
        self.requests[slot].received = self.now
        self.retryBudget.requestStarted()
        self.startAttempt(slot, &picker)
    }

    /// Picks a backend for the request's next attempt (another than those that failed it whenever one
    /// is available), and sends it there, or waits for a place there, or answers 503.
    mutating func startAttempt<P: Picker>(_ slot: Int, _ picker: inout P) {
        let attempt = self.nextAttemptID
        self.nextAttemptID &+= 1
        self.requests[slot].attemptID = attempt
        self.requests[slot].attempts += 1
        let request = self.requests[slot]
        let pick = PickRequest(now: Instant(nanoseconds: self.now), clientKey: self.clientKeys[Int(request.client)], hashKey: self.hashKey(of: request))
        let chosen: Int?
        if request.failedBefore, let tried = self.tried[Int32(slot)] {
            let states = self.inService.map { self.backends[$0].state }
            let failed = tried.map { ObjectIdentifier(self.backends[Int($0)].state) }
            chosen = picker.pick(pick, avoiding: failed, count: states.count) { states[$0] }
        } else {
            chosen = picker.pick(pick)
        }
        if request.picked < 0 { self.requests[slot].picked = self.now }
        guard let chosen else {
            self.proxyAnswers(slot, status: 503)
            return
        }
        let backend = self.inService[chosen]
        self.requests[slot].backend = Int32(backend)
        switch self.proxyBackends[backend].limiter.requestArrived(Self.waiter(slot, attempt), now: Instant(nanoseconds: self.now)) {
        case .proceed:
            self.proceed(slot, to: backend, &picker)
        case .reject:
            self.proxyAnswers(slot, status: 503)
        case .wait(let deadline):
            self.requests[slot].waiting = true
            self.queueDeadlines.append(deadline.nanoseconds, (Int32(slot), attempt))
        }
    }

    /// The limiter's waiter for `attempt` of the request in `slot`.
    static func waiter(_ slot: Int, _ attempt: UInt32) -> UInt64 {
        UInt64(slot) << 32 | UInt64(attempt)
    }

    /// Sends the request's current attempt to `backend`, which has a place for it.
    @inline(__always)
    private mutating func proceed<P: Picker>(_ slot: Int, to backend: Int, _ picker: inout P) {
        self.backends[backend].state.requestStarted()
        self.requests[slot].waiting = false
        self.requests[slot].attemptStart = self.now
        let attempt = self.requests[slot].attemptID
        self.headerDeadlines.append(self.now + self.responseHeaderTimeout, (Int32(slot), attempt))
        if self.headerDeadlines.needsCompacting(live: self.requests.live) {
            let requests = self.requests
            self.headerDeadlines.compact(live: requests.live) { requests[Int($0.slot)].attemptID != $0.attempt || requests[Int($0.slot)].proxyDone }
        }
        let job = self.jobs.insert(SimJob(request: Int32(slot), attemptID: attempt, backend: Int32(backend), epoch: self.backends[backend].epoch))
        // The backend's event loop wakes to read it.
        let delay = self.hop(self.proxyToBackend, wakeups: 1)
        if delay <= 0 {
            self.reachesBackend(job, &picker)
        } else {
            self.schedule(.reachesBackend, job: job, at: self.now + delay)
        }
    }

    /// A job's answer, or its failure, reaches the proxy. An answer for an attempt the proxy gave up on
    /// is dropped.
    mutating func answerReachesProxy<P: Picker>(_ job: Int, _ picker: inout P) {
        let done = self.jobs[job]
        self.jobFinished(job)
        let slot = Int(done.request)
        guard self.requests[slot].attemptID == done.attemptID, !self.requests[slot].proxyDone, !self.requests[slot].waiting else { return }
        self.requests[slot].upstreamDone = self.now
        self.requests[slot].service = done.latency + done.cpu
        let backend = Int(done.backend)
        self.attemptEnded(slot, on: backend, &picker)
        switch done.outcome {
        case .status(let status):
            if status >= 500 {
                self.outlierFailed(backend, &picker)
                if self.service.retries.retryOn.contains(where: { $0.matches(.status(Int(status))) }),
                    self.retryIfAllowed(slot, after: .status(Int(status)), failedOn: backend, &picker)
                {
                    return
                }
            } else {
                self.outlierSucceeded(backend)
            }
            self.requests[slot].answeredByBackend = true
            self.proxyAnswers(slot, status: status)
        case .refused:
            self.attemptFailed(slot, .connectFailed, on: backend, &picker)
        case .reset:
            self.attemptFailed(slot, .connectionReset, on: backend, &picker)
        }
    }

    /// An attempt is over at the proxy, whatever its outcome: its place under the connection limit
    /// goes to the next waiter, the backend counts it out, the picker learns its latency.
    @inline(__always)
    private mutating func attemptEnded<P: Picker>(_ slot: Int, on backend: Int, _ picker: inout P) {
        let state = self.backends[backend].state
        state.requestFinished()
        picker.requestFinished(on: state, latency: .nanoseconds(self.now - self.requests[slot].attemptStart), now: Instant(nanoseconds: self.now))
        if let next = self.proxyBackends[backend].limiter.requestFinished() {
            let waiting = Int(next >> 32)
            self.proceed(waiting, to: backend, &picker)
        }
    }

    /// The response header of the request's current attempt did not come within the service's
    /// timeout: the attempt fails (`response-timeout`); its backend goes on with it.
    mutating func responseTimedOut<P: Picker>(_ slot: Int, attempt: UInt32, _ picker: inout P) {
        let request = self.requests[slot]
        guard request.attemptID == attempt, !request.proxyDone, !request.waiting else { return }
        let backend = Int(request.backend)
        self.attemptEnded(slot, on: backend, &picker)
        self.attemptFailed(slot, .responseTimedOut, on: backend, &picker)
    }

    /// The request waited for a place with its backend past the queue timeout: 503.
    mutating func queueTimedOut<P: Picker>(_ slot: Int, attempt: UInt32, _ picker: inout P) {
        let request = self.requests[slot]
        guard request.attemptID == attempt, request.waiting, !request.proxyDone else { return }
        let backend = Int(request.backend)
        guard self.proxyBackends[backend].limiter.waitTimedOut(Self.waiter(slot, attempt)) else { return }
        self.requests[slot].waiting = false
        self.proxyAnswers(slot, status: 503)
    }

    /// The current attempt failed before an answer: retried or requeued as the policy and the budget
    /// say, or answered 502 (504 after a timeout).
    private mutating func attemptFailed<P: Picker>(_ slot: Int, _ failure: AttemptFailure, on backend: Int, _ picker: inout P) {
        self.outlierFailed(backend, &picker)
        guard !self.retryIfAllowed(slot, after: failure, failedOn: backend, &picker) else { return }
        self.proxyAnswers(slot, status: failure == .responseTimedOut ? 504 : 502)
    }

    /// Retries or requeues the request after `failure` on `backend` when policy and budget allow;
    /// `false` when it is to be answered with the failure.
    private mutating func retryIfAllowed<P: Picker>(_ slot: Int, after failure: AttemptFailure, failedOn backend: Int, _ picker: inout P) -> Bool {
        var holdsRetry = self.requests[slot].holdsRetry
        let next = self.service.retries.nextAttempt(
            after: failure,
            method: self.scenario.load.method,
            attempt: Int(self.requests[slot].attempts),
            canReplay: true,
            budget: &self.retryBudget,
            holdsRetry: &holdsRetry,
            using: &self.proxyGenerator
        )
        self.requests[slot].holdsRetry = holdsRetry
        if case .giveUp = next { return false }
        if self.requests[slot].retriedFrom < 0 { self.requests[slot].retriedFrom = Int32(backend) }
        self.requests[slot].failedBefore = true
        self.tried[Int32(slot), default: []].append(Int32(backend))
        switch next {
        case .requeue:
            self.startAttempt(slot, &picker)
        case .retry(let delay):
            // A new attempt number, so that nothing of the failed one acts on the request meanwhile.
            self.requests[slot].attemptID = 0
            self.events.schedule(.retry, slot, at: self.now + max(0, delay.nanoseconds))
        case .giveUp:
            return false
        }
        return true
    }

    /// The proxy answers the request with `status`: the budget counts it out, its row is recorded, and
    /// the answer leaves for the client.
    @inline(__always)
    mutating func proxyAnswers(_ slot: Int, status: Int16) {
        if self.requests[slot].holdsRetry {
            self.retryBudget.retryFinished()
            self.requests[slot].holdsRetry = false
        }
        self.retryBudget.requestFinished()
        self.requests[slot].status = status
        self.requests[slot].proxyDone = true
        if self.requests[slot].failedBefore { self.tried[Int32(slot)] = nil }
        self.output.proxyDone(self.requests[slot], client: self.clientAddresses)
        let delay = self.draw(self.proxyToClient)
        if delay <= 0 {
            self.answerReachesClient(slot)
        } else {
            self.events.schedule(.answerReachesClient, slot, at: self.now + delay)
        }
    }

    /// The hash a hash-based picker places `request` by, as the proxy computes it for the service's
    /// `hash-key`: the client's address, the key the load generator sends in `X-LBLab-Key`, or the path.
    private func hashKey(of request: SimRequest) -> UInt64? {
        switch self.hashSource {
        case .clientIP: return self.clientKeys[Int(request.client)]
        case .key: return request.key >= 0 ? self.keyHashes[Int(request.key)] : nil
        case .path: return self.pathHash
        case .none: return nil
        }
    }
}
