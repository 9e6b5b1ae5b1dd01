import LBConfig
import LBCore

/// The backends' side: a job arrives, waits for a place and a CPU thread, sleeps its latency and is
/// answered, as `lbctl backend` serves a request (SyntheticBackendHandler).
extension Simulation {
    /// Schedules `kind` about `job` at `time`, counted until it is handled.
    @inline(__always)
    mutating func schedule(_ kind: SimEventKind, job: Int, at time: Int64) {
        self.jobs[job].pendingEvents += 1
        self.events.schedule(kind, job, at: time)
    }

    /// A scheduled event about `job` is being handled; `false` when the job is over (a stale event of a
    /// killed backend's job), and then its slot is freed if nothing else names it.
    @inline(__always)
    mutating func jobEventArrives(_ job: Int) -> Bool {
        self.jobs[job].pendingEvents -= 1
        guard self.jobs[job].finished else { return true }
        if self.jobs[job].pendingEvents == 0 { self.jobs.remove(job) }
        return false
    }

    /// The job's answer was taken at the proxy: its slot is freed once no event names it.
    @inline(__always)
    mutating func jobFinished(_ job: Int) {
        self.jobs[job].finished = true
        if self.jobs[job].pendingEvents == 0 { self.jobs.remove(job) }
    }

    mutating func reachesBackend<P: Picker>(_ job: Int, _ picker: inout P) {
        let index = Int(self.jobs[job].backend)
        guard self.jobs[job].epoch == self.backends[index].epoch else { return }
        let slot = Int(self.jobs[job].request)
        if self.requests[slot].attemptID == self.jobs[job].attemptID { self.requests[slot].upstreamStart = self.now }
        guard self.backends[index].running else {
            // Its port refuses the connection.
            self.answer(job, .refused, &picker)
            return
        }
        if self.backends[index].stopped {
            // The kernel accepts the connection; the process reads nothing until it resumes.
            self.backends[index].frozen.append((job, .reachesBackend, self.now - self.backends[index].stoppedAt))
            return
        }
        let overhead = self.backends[index].overheadNanos
        guard overhead == 0 else {
            // The backend reads it first, on one of its threads.
            self.jobs[job].cpu = overhead
            self.takeThread(job, backend: index, wakes: false)
            return
        }
        self.admit(job, on: index, &picker)
    }

    /// A request the backend has read takes a place, waits for one, or is refused (503).
    @inline(__always)
    private mutating func admit<P: Picker>(_ job: Int, on index: Int, _ picker: inout P) {
        switch self.backends[index].gate.requestArrived(Int32(job)) {
        case .serve: self.startService(job, on: index, &picker)
        case .queued: break
        case .refuse: self.answer(job, .status(503), &picker)
        }
    }

    /// A job that holds a place: its latency and error are drawn, then its CPU work waits for a thread,
    /// then its latency passes.
    @inline(__always)
    private mutating func startService<P: Picker>(_ job: Int, on index: Int, _ picker: inout P) {
        let sampler = self.backends[index].latency
        let latency = sampler.nanoseconds(using: &self.backends[index].generator)
        let fails = self.backends[index].drawsError()
        let cpu = self.backends[index].cpuNanosPerRequest
        self.jobs[job].latency = latency
        self.jobs[job].cpu = cpu
        self.jobs[job].fails = fails
        self.jobs[job].read = true
        guard cpu > 0 else {
            self.afterLatency(job, &picker)
            return
        }
        self.takeThread(job, backend: index, wakes: true)
    }

    /// The job's CPU work (`jobs[job].cpu`) runs on one of the backend's threads, or waits for one. A
    /// thread that `wakes` for it (its CPU work, not the reading, which the backend's event loop does
    /// as it wakes on the hop) spends `backend-cpu-wake` doing so, and may be placed on a core another
    /// thread's work holds (`cpu-stacking`), and then waits its turn there. A thread that goes from
    /// one job to the next (``cpuDone(_:_:)``) does neither.
    private mutating func takeThread(_ job: Int, backend index: Int, wakes: Bool) {
        self.jobs[job].cpuLeft = self.jobs[job].cpu
        guard self.backends[index].cpuBusy < self.backends[index].threads else {
            self.backends[index].cpuQueue.append(Int32(job))
            return
        }
        self.backends[index].cpuBusy += 1
        if wakes, self.backends[index].wakeNanos > 0 { self.backends[index].charge(self.backends[index].wakeNanos, at: self.now) }
        if wakes, self.stacksOnHeldCore() {
            self.hostQueue.append(Int32(job))
            return
        }
        self.runOnCore(job, backend: index)
    }

    /// Whether a CPU thread that wakes now is placed on a core held by another's CPU work while one is
    /// free: with `cpu-stacking`'s chance per held core.
    private mutating func stacksOnHeldCore() -> Bool {
        guard self.cpuStacking > 0, self.hostCoresFree > 0, !self.coresHeldUntil.isEmpty else { return false }
        return self.delayGenerator.unitInterval() < self.cpuStacking * Double(self.coresHeldUntil.count)
    }

    mutating func cpuDone<P: Picker>(_ job: Int, _ picker: inout P) {
        let index = Int(self.jobs[job].backend)
        guard self.jobs[job].epoch == self.backends[index].epoch else { return }
        if self.backends[index].stopped {
            self.backends[index].frozen.append((job, .cpuDone, self.now - self.backends[index].stoppedAt))
            return
        }
        self.backends[index].cpuNanos += self.jobs[job].cpu
        if let next = self.backends[index].cpuQueue.popFirst() {
            self.runOnCore(Int(next), backend: index)
        } else {
            self.backends[index].cpuBusy -= 1
        }
        if self.jobs[job].read {
            self.afterLatency(job, &picker)
        } else {
            self.jobs[job].read = true
            self.admit(job, on: index, &picker)
        }
    }

    /// A job whose backend has a thread for it runs on one of the host's cores, or waits for one: for
    /// the rest of its work, or for a time slice of it when the scenario gives one (`cpu-slice`).
    private mutating func runOnCore(_ job: Int, backend index: Int) {
        guard self.hostCoresFree > 0 else {
            self.hostQueue.append(Int32(job))
            return
        }
        let left = self.jobs[job].cpuLeft
        let work = self.cpuSlice > 0 ? min(left, self.cpuSlice) : left
        self.jobs[job].cpuLeft = left - work
        var (done, running) = self.backends[index].cpuFinish(from: self.now, work: work)
        let preempted = self.preemptionDelay(work: work)
        done += preempted
        running += preempted
        // Cores are counted only when the scenario gives the host's (`host-cpus`).
        if self.hostCoresFree != .max {
            self.hostCoresFree -= 1
            self.jobs[job].coreUntil = running
            self.coresHeldUntil.append(running)
            if running < done { self.schedule(.coreFreed, job: job, at: running) }
        }
        self.schedule(self.jobs[job].cpuLeft > 0 ? .sliceEnd : .cpuDone, job: job, at: done)
    }

    /// The wall time other threads' preemptions add to `work` nanoseconds of a CPU thread's work (`sim:
    /// preemptions`): they come as a Poisson process over the work, each as long as a draw.
    private mutating func preemptionDelay(work: Int64) -> Int64 {
        guard let gap = self.preemptionGap else { return 0 }
        var extra: Int64 = 0
        var at: Int64 = 0
        while true {
            at += self.draw(gap)
            guard at < work else { return extra }
            extra += self.draw(self.preemption)
        }
    }

    /// The job's thread ran its time slice and has work left: it runs on, or, when a waiting thread
    /// took its core (`yielded`), waits its turn for a core behind the others, even with one free, as
    /// the kernel keeps it on its core's run queue until it balances the cores.
    mutating func sliceEnded(_ job: Int, yielded: Bool) {
        let index = Int(self.jobs[job].backend)
        guard self.jobs[job].epoch == self.backends[index].epoch else { return }
        if self.backends[index].stopped {
            self.backends[index].frozen.append((job, .sliceEnd, self.now - self.backends[index].stoppedAt))
            return
        }
        guard !yielded else {
            self.hostQueue.append(Int32(job))
            return
        }
        self.runOnCore(job, backend: index)
    }

    /// How long the `wakeups` threads that take a request or an answer on from now wait for cores: each
    /// waits for one of the cores a backend's CPU work holds (any of them alike) with the scenario's
    /// `wakeup-wait` chance per held core, and the hop goes on when the last of them runs. The kernel
    /// mostly lets a woken thread preempt a spinning one, or moves it to a free core, but not always:
    /// bench/RESULTS.md has the trace.
    mutating func coreWait(wakeups: Int) -> Int64 {
        guard self.wakeupWait > 0, !self.coresHeldUntil.isEmpty else { return 0 }
        var waited: Int64 = 0
        for _ in 0..<wakeups {
            let held = self.coresHeldUntil.count
            guard self.delayGenerator.unitInterval() < self.wakeupWait * Double(held) else { continue }
            let core = self.coresHeldUntil[Int(self.delayGenerator.next() % UInt64(held))]
            waited = Swift.max(waited, core - self.now)
        }
        return waited
    }

    /// The CPU work of `job` is over (or its backend is gone): its core goes to the first waiting job
    /// whose backend still runs.
    /// `true` when a waiting job took the core.
    @discardableResult
    mutating func releaseCore(_ job: Int) -> Bool {
        let until = self.jobs[job].coreUntil
        guard until >= 0 else { return false }
        self.jobs[job].coreUntil = -1
        // Every held core is in the list, under the time its job set there.
        let held = self.coresHeldUntil.firstIndex(of: until)!
        self.coresHeldUntil.swapAt(held, self.coresHeldUntil.count - 1)
        self.coresHeldUntil.removeLast()
        self.hostCoresFree += 1
        while let next = self.hostQueue.popFirst() {
            let index = Int(self.jobs[Int(next)].backend)
            guard self.jobs[Int(next)].epoch == self.backends[index].epoch else { continue }
            self.runOnCore(Int(next), backend: index)
            return true
        }
        return false
    }

    @inline(__always)
    private mutating func afterLatency<P: Picker>(_ job: Int, _ picker: inout P) {
        let latency = self.jobs[job].latency
        if latency <= 0 {
            self.served(job, &picker)
        } else {
            self.schedule(.served, job: job, at: self.now + latency)
        }
    }

    mutating func served<P: Picker>(_ job: Int, _ picker: inout P) {
        let index = Int(self.jobs[job].backend)
        guard self.jobs[job].epoch == self.backends[index].epoch else { return }
        if self.backends[index].stopped {
            self.backends[index].frozen.append((job, .served, self.now - self.backends[index].stoppedAt))
            return
        }
        self.backends[index].served += 1
        if self.backends[index].afterNanos > 0 { self.backends[index].charge(self.backends[index].afterNanos, at: self.now) }
        let status: Int16 = self.jobs[job].fails ? 500 : 200
        if let next = self.backends[index].gate.requestFinished() {
            self.startService(Int(next), on: index, &picker)
        }
        self.answer(job, .status(status), &picker)
    }

    /// The job's outcome leaves for the proxy; no backend event names the job any more.
    @inline(__always)
    mutating func answer<P: Picker>(_ job: Int, _ outcome: SimAttemptOutcome, _ picker: inout P) {
        self.jobs[job].outcome = outcome
        self.jobs[job].epoch = -1
        // The backend's event loop wakes to answer, and the proxy's to read the answer.
        let delay = self.hop(self.proxyToBackend, wakeups: 2)
        if delay <= 0 {
            self.answerReachesProxy(job, &picker)
        } else {
            self.schedule(.answerReachesProxy, job: job, at: self.now + delay)
        }
    }

    /// SIGKILL: every job at the backend, waiting or served, loses its connection (the proxy sees a
    /// reset), and new connections are refused until a restart.
    mutating func kill<P: Picker>(_ index: Int, _ picker: inout P) {
        let epoch = self.backends[index].epoch
        self.backends[index].killed()
        // Its threads no longer wait for a core (their jobs' slots are about to be freed and reused).
        let jobs = self.jobs
        self.hostQueue.removeAll { jobs[Int($0)].backend == Int32(index) }
        self.closeWebSockets(to: index)
        let lost = (0..<self.jobs.count).filter { self.jobs[$0].backend == Int32(index) && self.jobs[$0].epoch == epoch }
        for job in lost { self.answer(job, .reset, &picker) }
    }

    /// SIGCONT: what came due while the backend was stopped happens as long after the resume as it came
    /// after the stop.
    mutating func resume<P: Picker>(_ index: Int, _ picker: inout P) {
        self.backends[index].stopped = false
        let frozen = self.backends[index].frozen
        self.backends[index].frozen.removeAll()
        for (job, kind, remaining) in frozen {
            guard remaining <= 0 else {
                self.schedule(kind, job: job, at: self.now + remaining)
                continue
            }
            switch kind {
            case .reachesBackend: self.reachesBackend(job, &picker)
            case .cpuDone: self.cpuDone(job, &picker)
            case .sliceEnd: self.sliceEnded(job, yielded: false)
            default: self.served(job, &picker)
            }
        }
    }
}
