import LBCore
import Testing

@Suite("Retries, backoff, retry budget, token buckets, connection limits")
struct PolicyTests {
    @Test("idempotent methods are retried on connect failure and 502/503/504; POST only when nothing was sent")
    func retryConditions() {
        let policy = RetryPolicy()
        var generator = SeededGenerator(seed: 1)
        func decide(_ method: String, _ failure: AttemptFailure, attempt: Int = 1) -> RetryPolicy.Decision {
            policy.decide(method: method, failure: failure, attempt: attempt, using: &generator)
        }
        for failure in [AttemptFailure.connectFailed, .connectTimedOut, .status(502), .status(503), .status(504)] {
            guard case .retry = decide("GET", failure) else {
                Issue.record("GET after \(failure) was not retried")
                continue
            }
        }
        #expect(decide("GET", .status(500)) == .giveUp(.notRetryable))
        #expect(decide("GET", .status(404)) == .giveUp(.notRetryable))
        #expect(decide("GET", .responseTimedOut) == .giveUp(.notRetryable))
        #expect(decide("POST", .status(503)) == .giveUp(.nonIdempotentMethod))
        #expect(decide("PATCH", .status(502)) == .giveUp(.nonIdempotentMethod))
        guard case .retry = decide("POST", .connectFailed) else {
            Issue.record("a POST that was never sent was not retried")
            return
        }
        #expect(decide("GET", .status(503), attempt: 3) == .giveUp(.attemptsExhausted))
        var permissive = RetryPolicy(retryOn: [.anyServerError, .reset], retryNonIdempotent: true)
        permissive.maxRetries = 1
        guard case .retry = permissive.decide(method: "POST", failure: .status(500), attempt: 1, using: &generator) else {
            Issue.record("a configured retry of POST on 500 was refused")
            return
        }
    }

    @Test("backoff is fully jittered: uniform on [0, min(max, base·2^(k−1))]")
    func backoff() {
        let backoff = Backoff(base: .milliseconds(25), max: .milliseconds(250))
        #expect((1...6).map { backoff.upperBound(beforeRetry: $0) } == [
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(250), .milliseconds(250),
        ])
        var generator = SeededGenerator(seed: 3)
        let draws = 20_000
        for retry in [1, 3, 5] {
            let bound = Double(backoff.upperBound(beforeRetry: retry).nanoseconds)
            var sum = 0.0
            for _ in 0..<draws {
                let delay = Double(backoff.delay(beforeRetry: retry, using: &generator).nanoseconds)
                #expect(delay >= 0 && delay <= bound)
                sum += delay
            }
            // Uniform on [0, b]: mean b/2, standard error b/√(12·draws); 5 of them is 1% of b here.
            #expect(abs(sum / Double(draws) - bound / 2) <= 5 * bound / (12.0 * Double(draws)).squareRoot())
        }
    }

    @Test("the retry budget refuses retries beyond its share of in-flight requests")
    func retryBudget() {
        var budget = RetryBudget(share: 0.2, minimumConcurrency: 3)
        for _ in 0..<100 { budget.requestStarted() }
        // Each retry is itself in flight, so the (r+1)-th starts while r < ⌊0.2·(100 + r)⌋: true up to
        // r = 23 (23 < ⌊24.6⌋), false at r = 24 (24 < ⌊24.8⌋ = 24 fails). So 24 retries, then refusal.
        var allowed = 0
        while budget.retryStarted() { allowed += 1 }
        #expect(allowed == 24)
        #expect(budget.refused == 1)
        budget.retryFinished()
        let afterOneFinished = budget.retryStarted()
        #expect(afterOneFinished)
        // A quiet service keeps the minimum.
        var quiet = RetryBudget(share: 0.2, minimumConcurrency: 3)
        quiet.requestStarted()
        let quietRetries = (0..<4).map { _ in quiet.retryStarted() }
        #expect(quietRetries == [true, true, true, false])
        // A new minimum (a reload) counts the retries already in flight: three run, so one more at 4.
        quiet.minimumConcurrency = 4
        let afterRaise = [quiet.retryStarted(), quiet.retryStarted()]
        #expect(afterRaise == [true, false])
        #expect(quiet.activeRetries == 4 && quiet.activeRequests == 5)
    }

    @Test("a token bucket allows its burst at once and its rate after that")
    func tokenBucket() {
        var bucket = TokenBucket(rate: 10, burst: 5, now: .zero)
        #expect((0..<7).map { _ in bucket.take(now: .zero) } == [true, true, true, true, true, false, false])
        #expect(bucket.wait(now: .zero) == .milliseconds(100))
        let early = bucket.take(now: .zero + .milliseconds(99))
        let onTime = bucket.take(now: .zero + .milliseconds(200))
        #expect(!early && onTime)
        // Over 10 s at one request per millisecond, 10/s plus the burst get through.
        var allowed = 0
        for ms in 1...10_000 where bucket.take(now: .zero + .milliseconds(200 + ms)) { allowed += 1 }
        #expect(allowed == 100 || allowed == 101)
        // It never holds more than its burst.
        #expect(bucket.available(now: .zero + .seconds(3_600)) == 5)
        // A rate near zero waits as long as a duration holds, not past it.
        var slow = TokenBucket(rate: 1e-300, burst: 1, now: .zero)
        #expect(slow.take(now: .zero) && slow.wait(now: .zero) == .nanoseconds(9_000_000_000_000_000_000))
    }

    @Test("per-client limits are independent per client and memory stays bounded")
    func clientRateLimiter() {
        var limiter = ClientRateLimiter<UInt32>(rate: 1, burst: 2, capacity: 1_000)
        let first = (0..<3).map { _ in limiter.allow(1, now: .zero) }
        #expect(first == [true, true, false])
        let other = limiter.allow(2, now: .zero)
        #expect(other)
        for client in 0..<50_000 as Range<UInt32> {
            _ = limiter.allow(client, now: .zero + .milliseconds(Int(client)))
            if client % 1_000 == 0 { #expect(limiter.trackedClients <= 1_000) }
        }
        #expect(limiter.trackedClients <= 1_000)
        // The most recent client keeps its bucket (one of its burst of two is spent), rather than being
        // evicted and handed a fresh burst.
        let recent = (0..<3).map { _ in limiter.allow(49_999, now: .zero + .milliseconds(49_999)) }
        #expect(recent == [true, false, false])
    }

    @Test("max connections: proceed, then queue up to the bound, then reject; places pass on in order")
    func connectionLimiter() {
        var limiter = ConnectionLimiter<Int>(maxActive: 2, maxQueued: 2, queueTimeout: .seconds(1))
        let arrivals = (1...5).map { limiter.requestArrived($0, now: .zero) }
        let deadline = Instant.zero + .seconds(1)
        #expect(arrivals == [.proceed, .proceed, .wait(deadline: deadline), .wait(deadline: deadline), .reject])
        #expect(limiter.rejected == 1)
        let handedTo = limiter.requestFinished()
        #expect(handedTo == 3)
        let timeouts = [limiter.waitTimedOut(4), limiter.waitTimedOut(4)]
        #expect(timeouts == [true, false])
        let handedToNobody = limiter.requestFinished()
        #expect(handedToNobody == nil)
        #expect(limiter.active == 1 && limiter.queued == 0 && limiter.timedOut == 1)
        // A newcomer does not jump the queue while someone waits.
        var fair = ConnectionLimiter<Int>(maxActive: 1, maxQueued: 5, queueTimeout: .seconds(1))
        _ = fair.requestArrived(1, now: .zero)
        _ = fair.requestArrived(2, now: .zero)
        let next = fair.requestFinished()
        #expect(next == 2)
        let newcomer = fair.requestArrived(3, now: .zero)
        #expect(newcomer == .wait(deadline: .zero + .seconds(1)))
    }

    @Test("new limits: a higher max lets the oldest waiters through at once; a lower one holds waiters until fewer are in progress")
    func connectionLimiterRelimited() {
        var limiter = ConnectionLimiter<Int>(maxActive: 2, maxQueued: 5, queueTimeout: .seconds(1))
        for id in 1...6 { _ = limiter.requestArrived(id, now: .zero) }
        #expect(limiter.active == 2 && limiter.queued == 4)
        let through = limiter.setLimits(maxActive: 4, maxQueued: 5, queueTimeout: .seconds(2))
        #expect(through == [3, 4])
        #expect(limiter.active == 4 && limiter.queued == 2)
        // Waiting requests keep their deadline; a new one waits by the new timeout.
        #expect(limiter.requestArrived(7, now: .zero) == .wait(deadline: .zero + .seconds(2)))
        // Down to 1 in progress with 4 in progress and 3 waiting: the next three finishes hand on nothing.
        #expect(limiter.setLimits(maxActive: 1, maxQueued: 1, queueTimeout: .seconds(2)).isEmpty)
        #expect(limiter.requestArrived(8, now: .zero) == .reject, "3 wait, the new queue bound is 1")
        let handed = (0..<4).map { _ in limiter.requestFinished() }
        #expect(handed == [nil, nil, nil, 5])
        #expect(limiter.active == 1 && limiter.queued == 2)
    }
}
