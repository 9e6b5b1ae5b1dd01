import LBConfig
import LBCore
import NIOCore
import Synchronization

/// What the proxy tracks of a backend beyond ``BackendState``: whether its last outcomes were
/// failures (so a success takes the outlier detector's lock only after a failure), and since when it
/// is available again, for slow start (0 when not ramping).
final class BackendTracking: Sendable {
    let failing = Atomic<Bool>(false)
    let availableSinceNanos = Atomic<Int64>(0)

    init() {}
}

extension ServiceRuntime {
    /// A request on `backend` ended well: a run of failures, if any, ends.
    func outlierSucceeded(_ backend: LoopBackend) {
        guard self.detectsOutliers, backend.tracking.failing.load(ordering: .relaxed) else { return }
        backend.tracking.failing.store(false, ordering: .relaxed)
        self.outliers.withLock { $0?.requestSucceeded(ObjectIdentifier(backend.state)) }
    }

    /// A request on `backend` failed (a 5xx, a failed or reset connection, a timeout): the outlier
    /// detector may eject it, and then `eventLoop` readmits it when the ejection ends.
    func outlierFailed(_ backend: BackendRuntime, eventLoop: any EventLoop) {
        guard self.detectsOutliers else { return }
        backend.tracking.failing.store(true, ordering: .relaxed)
        let now = Instant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))
        let action = self.outliers.withLock { $0?.requestFailed(ObjectIdentifier(backend.state), now: now) }
        guard case .eject(_, let until)? = action else { return }
        backend.state.setEjected(true)
        backend.metrics.ejections.increment()
        self.recorder?.event(
            "ejected",
            backend.spec.name,
            ["service": self.settings.name, "for": GoDuration.format(until - now)]
        )
        eventLoop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(until.nanoseconds))) {
            self.readmitDue()
        }
    }

    /// Readmits the backends whose ejection has ended; they ramp up again under slow start.
    func readmitDue() {
        guard self.detectsOutliers else { return }
        let now = Instant(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))
        let readmitted = Set(self.outliers.withLock { $0?.readmitDue(now: now) ?? [] })
        guard !readmitted.isEmpty else { return }
        for backend in self.backends where readmitted.contains(ObjectIdentifier(backend.state)) {
            backend.tracking.failing.store(false, ordering: .relaxed)
            backend.state.setEjected(false)
            self.recorder?.event("readmitted", backend.spec.name, ["service": self.settings.name])
            self.startRamp(backend, now: now)
        }
    }

    /// `backend` became available (added, back up, readmitted): with slow start on, its weight ramps
    /// from now, and every loop rebuilds its picker as it goes.
    func startRamp(_ backend: BackendRuntime, now: Instant) {
        guard self.tunables.slowStart.window > .zero else { return }
        backend.tracking.availableSinceNanos.store(max(1, now.nanoseconds), ordering: .relaxed)
        self.changed()
    }

    /// The weight pickers give `backend` at `now` under `slowStart`, and whether it is still ramping.
    func effectiveWeight(_ backend: BackendRuntime, now: Instant, slowStart: SlowStart) -> (weight: Double, ramping: Bool) {
        let weight = Double(backend.spec.weight)
        let since = backend.tracking.availableSinceNanos.load(ordering: .relaxed)
        guard since > 0, slowStart.window > .zero else { return (weight, false) }
        let start = Instant(nanoseconds: since)
        guard slowStart.isRamping(since: start, now: now) else { return (weight, false) }
        return (slowStart.effectiveWeight(weight, since: start, now: now), true)
    }
}
