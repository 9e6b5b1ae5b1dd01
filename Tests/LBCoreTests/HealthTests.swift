import LBCore
import Testing

@Suite("Active health checks, outlier ejection, slow start")
struct HealthTests {
    let configuration = HealthCheckConfiguration(interval: .seconds(2), timeout: .seconds(1), rise: 2, fall: 3)

    /// Runs one probe at `now` with the given outcome.
    func probe(_ machine: inout HealthCheckStateMachine, at now: Instant, succeeds: Bool)
        -> HealthCheckStateMachine.ProbeResultAction
    {
        guard case .sendProbe = machine.probeDue(now: now) else {
            Issue.record("no probe was due at \(now)")
            return .init(transition: nil, nextProbeAt: now)
        }
        return succeeds ? machine.probeSucceeded(now: now) : machine.probeFailed(now: now)
    }

    @Test("down after exactly fall consecutive failures, up after exactly rise consecutive successes", arguments: [(2, 3), (1, 1), (5, 2)])
    func riseAndFall(rise: Int, fall: Int) {
        let configuration = HealthCheckConfiguration(interval: .seconds(1), timeout: .milliseconds(500), rise: rise, fall: fall)
        var machine = HealthCheckStateMachine(configuration: configuration, initialState: .fullyUp, now: .zero)
        var now = Instant.zero
        for failure in 1...fall {
            let action = probe(&machine, at: now, succeeds: false)
            #expect(action.transition == (failure == fall ? .wentDown : nil))
            #expect(machine.status == (failure == fall ? .down : .up))
            now = action.nextProbeAt
        }
        for success in 1...rise {
            let action = probe(&machine, at: now, succeeds: true)
            #expect(action.transition == (success == rise ? .wentUp : nil))
            now = action.nextProbeAt
        }
        #expect(machine.status == .up)
    }

    @Test("an isolated failure or success is absorbed; the runs must be consecutive")
    func consecutive() {
        var machine = HealthCheckStateMachine(configuration: configuration, initialState: .fullyUp, now: .zero)
        var now = Instant.zero
        // fail, fail, success, fail, fail: never three in a row.
        for succeeds in [false, false, true, false, false] {
            now = probe(&machine, at: now, succeeds: succeeds).nextProbeAt
            #expect(machine.status == .up)
        }
        now = probe(&machine, at: now, succeeds: false).nextProbeAt
        #expect(machine.status == .down)
        // success, fail, success: never two in a row.
        for succeeds in [true, false, true] {
            now = probe(&machine, at: now, succeeds: succeeds).nextProbeAt
            #expect(machine.status == .down)
        }
        now = probe(&machine, at: now, succeeds: true).nextProbeAt
        #expect(machine.status == .up)
    }

    @Test("initial states as HAProxy's init-state: up falls at the first failure, down rises at the first success")
    func initialStates() {
        var up = HealthCheckStateMachine(configuration: configuration, initialState: .up, now: .zero)
        #expect(probe(&up, at: .zero, succeeds: false).transition == .wentDown)
        var down = HealthCheckStateMachine(configuration: configuration, initialState: .down, now: .zero)
        #expect(down.status == .down)
        #expect(probe(&down, at: .zero, succeeds: true).transition == .wentUp)
        var fullyDown = HealthCheckStateMachine(configuration: configuration, initialState: .fullyDown, now: .zero)
        let first = probe(&fullyDown, at: .zero, succeeds: true)
        #expect(first.transition == nil)
        #expect(probe(&fullyDown, at: first.nextProbeAt, succeeds: true).transition == .wentUp)
    }

    @Test("probes start every interval; a timeout is a failure; a dead backend is down within fall × interval")
    func scheduleAndTimeouts() {
        var machine = HealthCheckStateMachine(configuration: configuration, initialState: .fullyUp, now: .zero)
        #expect(machine.probeDue(now: .zero) == .sendProbe(deadline: .zero + .seconds(1)))
        // While a probe is in flight no second one is sent.
        #expect(machine.probeDue(now: .zero + .milliseconds(500)) == .wait(until: .zero + .seconds(1)))
        var action = machine.probeTimedOut(now: .zero + .seconds(1))
        #expect(action.nextProbeAt == .zero + .seconds(2))
        #expect(machine.probeDue(now: .zero + .milliseconds(1_500)) == .wait(until: .zero + .seconds(2)))
        action = probe(&machine, at: .zero + .seconds(2), succeeds: false)
        action = probe(&machine, at: action.nextProbeAt, succeeds: false)
        #expect(action.transition == .wentDown)
        // Failures at 0 s, 2 s and 4 s: down at the third probe, 4 s after the first, < 3 × 2 s.
        #expect(machine.status == .down && machine.probesSent == 3)
        #expect(action.nextProbeAt == .zero + .seconds(6))
    }

    @Test("invalid health settings are refused with the field's name")
    func validation() {
        #expect(throws: HealthCheckConfigurationError(field: "rise", problem: "must be at least 1")) {
            try HealthCheckConfiguration(rise: 0).validate()
        }
        #expect(throws: HealthCheckConfigurationError.self) {
            try HealthCheckConfiguration(interval: .seconds(1), timeout: .seconds(2)).validate()
        }
        #expect(throws: Never.self) { try HealthCheckConfiguration().validate() }
    }

    // MARK: Outlier detection

    func detector(_ n: Int, share: Double = 0.5) -> OutlierDetector<Int> {
        var detector = OutlierDetector<Int>(configuration: OutlierDetectionConfiguration(
            consecutiveFailures: 3,
            baseEjectionTime: .seconds(10),
            maxEjectionTime: .seconds(35),
            maxEjectedShare: share,
            forgiveAfter: .seconds(60)
        ))
        for id in 0..<n { detector.backendAdded(id, now: .zero) }
        return detector
    }

    @Test("ejected after N consecutive failures; a success in between resets the run")
    func ejectAfterConsecutiveFailures() {
        var detector = detector(4)
        #expect(detector.requestFailed(0, now: .zero) == .none)
        #expect(detector.requestFailed(0, now: .zero) == .none)
        detector.requestSucceeded(0)
        #expect(detector.requestFailed(0, now: .zero) == .none)
        #expect(detector.requestFailed(0, now: .zero) == .none)
        #expect(detector.requestFailed(0, now: .zero) == .eject(0, until: .zero + .seconds(10)))
        #expect(detector.isEjected(0))
    }

    @Test("ejection times grow with each ejection, up to the maximum, and readmission happens on time")
    func ejectionTimesGrow() {
        var detector = detector(4)
        var now = Instant.zero
        var lengths: [Duration] = []
        for _ in 0..<5 {
            var action = OutlierDetector<Int>.Action.none
            for _ in 0..<3 { action = detector.requestFailed(1, now: now) }
            guard case .eject(1, let until) = action else {
                Issue.record("expected an ejection, got \(action)")
                return
            }
            lengths.append(until - now)
            #expect(detector.nextReadmissionAt == until)
            #expect(detector.readmitDue(now: until - .milliseconds(1)).isEmpty)
            #expect(detector.readmitDue(now: until) == [1])
            now = until + .seconds(1)
        }
        // base × times ejected: 10, 20, 30, then capped at 35.
        #expect(lengths == [.seconds(10), .seconds(20), .seconds(30), .seconds(35), .seconds(35)])
    }

    @Test("a new configuration keeps the counts and the ejections under way, and times the next by itself")
    func reconfigured() {
        var detector = detector(4)
        for _ in 0..<3 { _ = detector.requestFailed(0, now: .zero) }
        #expect(detector.requestFailed(1, now: .zero) == .none)
        detector.configuration.consecutiveFailures = 2
        detector.configuration.baseEjectionTime = .seconds(4)
        #expect(detector.isEjected(0), "an ejection under way goes on")
        #expect(detector.readmitDue(now: .zero + .seconds(9)).isEmpty, "and ends at its own time")
        // Backend 1's failure before the change counts: one more reaches the new threshold of 2.
        #expect(detector.requestFailed(1, now: .zero) == .eject(1, until: .zero + .seconds(4)))
    }

    @Test("time spent admitted forgives past ejections")
    func forgiveness() {
        var detector = detector(2)
        for _ in 0..<3 { _ = detector.requestFailed(0, now: .zero) }
        #expect(detector.readmitDue(now: .zero + .seconds(10)) == [0])
        // Two full forgiveness periods later the count is back to zero: the next ejection is base long.
        let later = Instant.zero + .seconds(10 + 120)
        var action = OutlierDetector<Int>.Action.none
        for _ in 0..<3 { action = detector.requestFailed(0, now: later) }
        #expect(action == .eject(0, until: later + .seconds(10)))
    }

    @Test("never more than the max ejected share of backends out at once", arguments: [(10, 0.3, 3), (4, 0.5, 2), (3, 0.1, 0)])
    func maxEjectedShare(n: Int, share: Double, allowed: Int) {
        var detector = detector(n, share: share)
        var ejected = 0
        var refused = 0
        for id in 0..<n {
            var action = OutlierDetector<Int>.Action.none
            for _ in 0..<3 { action = detector.requestFailed(id, now: .zero) }
            switch action {
            case .eject: ejected += 1
            case .ejectionRefused: refused += 1
            case .none: Issue.record("backend \(id) reached the threshold without a decision")
            }
            #expect(detector.ejectedCount <= allowed)
        }
        #expect(ejected == allowed && refused == n - allowed)
        // Once one is readmitted, the next outlier may go.
        if allowed > 0 {
            _ = detector.readmitDue(now: .zero + .seconds(10))
            for _ in 0..<2 { _ = detector.requestFailed(n - 1, now: .zero + .seconds(10)) }
            guard case .eject = detector.requestFailed(n - 1, now: .zero + .seconds(10)) else {
                Issue.record("the refused backend was not ejected once there was room")
                return
            }
        }
    }

    // MARK: Slow start

    @Test("slow start ramps linearly from the minimum share to the full weight over the window")
    func slowStart() {
        let ramp = SlowStart(window: .seconds(20), minimumShare: 0.1)
        let since = Instant.zero + .seconds(100)
        #expect(ramp.share(since: since, now: since) == 0.1)
        #expect(ramp.share(since: since, now: since + .seconds(1)) == 0.1)  // 1/20 < 0.1: the floor holds
        #expect(abs(ramp.share(since: since, now: since + .seconds(5)) - 0.25) < 1e-12)
        #expect(abs(ramp.effectiveWeight(8, since: since, now: since + .seconds(10)) - 4) < 1e-12)
        #expect(ramp.share(since: since, now: since + .seconds(20)) == 1)
        #expect(ramp.share(since: since, now: since + .seconds(500)) == 1)
        #expect(ramp.isRamping(since: since, now: since + .seconds(19)))
        #expect(!ramp.isRamping(since: since, now: since + .seconds(20)))
        #expect(ramp.step == .seconds(1))
        // Monotone over the whole window.
        var previous = 0.0
        for ms in stride(from: 0, through: 25_000, by: 250) {
            let share = ramp.share(since: since, now: since + .milliseconds(ms))
            #expect(share >= previous)
            previous = share
        }
        #expect(SlowStart.off.share(since: since, now: since) == 1)
    }

    @Test("a ramping backend gets its ramped share of smooth WRR traffic")
    func slowStartWithPicker() {
        let ramp = SlowStart(window: .seconds(10))
        let since = Instant.zero
        var cluster = Cluster(picker: SmoothWeightedRoundRobin(), weights: [1, 1])
        cluster.backends[1].weight = ramp.effectiveWeight(1, since: since, now: since + .seconds(5))
        cluster.rebuild()
        // Weights 1 and 0.5: a third of the traffic for the newcomer.
        #expect(cluster.counts(300) == [200, 100])
    }
}
