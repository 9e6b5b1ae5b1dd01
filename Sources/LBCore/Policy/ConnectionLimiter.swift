public import DequeModule

/// A limit on concurrent requests to one backend with a bounded wait queue (HAProxy's `maxconn` and
/// `maxqueue` with `timeout queue`): a pure machine returning what the executor does.
///
/// Up to `maxActive` requests proceed at once; the next `maxQueued` wait in arrival order, each until
/// its deadline; beyond that a request is rejected at once (the proxy answers 503 and counts it).
/// A finished request hands its place to the oldest waiter.
public struct ConnectionLimiter<Waiter: Hashable & Sendable>: Sendable {
    /// What to do with a new request.
    public enum RequestAction: Sendable, Hashable {
        /// Send it now.
        case proceed
        /// Hold it; reject it if ``waitTimedOut(_:)`` comes first for it at `deadline`.
        case wait(deadline: Instant)
        /// Refuse it: the queue is full.
        case reject
    }

    /// The most requests in progress at once.
    public private(set) var maxActive: Int
    /// The most requests waiting at once.
    public private(set) var maxQueued: Int
    /// How long a request may wait.
    public private(set) var queueTimeout: Duration
    /// Requests in progress.
    public var active: Int { self._active }
    /// Requests rejected because the queue was full, for the metrics.
    public var rejected: Int { self._rejected }
    // Visible to the inlinable calls below, which the proxy makes twice per request: specialized in the
    // caller's module, they cost no generic metadata lookup.
    @usableFromInline var _active = 0
    @usableFromInline var queue: Deque<Waiter> = []
    @usableFromInline var _rejected = 0
    /// Requests that waited past their deadline, for the metrics.
    public private(set) var timedOut = 0

    /// A limiter of `maxActive` in progress and `maxQueued` waiting for at most `queueTimeout`.
    public init(maxActive: Int, maxQueued: Int, queueTimeout: Duration) {
        precondition(maxActive >= 1 && maxQueued >= 0, "ConnectionLimiter needs maxActive >= 1, maxQueued >= 0")
        self.maxActive = maxActive
        self.maxQueued = maxQueued
        self.queueTimeout = queueTimeout
    }

    /// Takes up new limits (a reload); returns the waiters that may proceed now, oldest first, when
    /// `maxActive` grew. Requests already in progress or waiting keep their place and their deadline: a
    /// lower `maxActive` takes effect as they finish (no waiter proceeds until fewer than it are in
    /// progress), a lower `maxQueued` for new arrivals, a new `queueTimeout` for new waiters.
    public mutating func setLimits(maxActive: Int, maxQueued: Int, queueTimeout: Duration) -> [Waiter] {
        precondition(maxActive >= 1 && maxQueued >= 0, "ConnectionLimiter needs maxActive >= 1, maxQueued >= 0")
        self.maxActive = maxActive
        self.maxQueued = maxQueued
        self.queueTimeout = queueTimeout
        var proceeding: [Waiter] = []
        while self._active < self.maxActive, let next = self.queue.popFirst() {
            self._active += 1
            proceeding.append(next)
        }
        return proceeding
    }

    /// Requests waiting.
    public var queued: Int { self.queue.count }

    /// A request arrived at `now`.
    @inlinable
    public mutating func requestArrived(_ waiter: Waiter, now: Instant) -> RequestAction {
        if self._active < self.maxActive && self.queue.isEmpty {
            self._active += 1
            return .proceed
        }
        guard self.queue.count < self.maxQueued else {
            self._rejected += 1
            return .reject
        }
        self.queue.append(waiter)
        return .wait(deadline: now + self.queueTimeout)
    }

    /// A request in progress finished; returns the waiter that may now proceed, if any (none while
    /// more than ``maxActive`` are in progress, as after a lower limit was set).
    @inlinable
    public mutating func requestFinished() -> Waiter? {
        precondition(self._active > 0, "ConnectionLimiter.requestFinished() with no request in progress")
        if self._active <= self.maxActive, let next = self.queue.popFirst() {
            return next
        }
        self._active -= 1
        return nil
    }

    /// A waiting request reached its deadline; `true` if it was still waiting (reject it now).
    public mutating func waitTimedOut(_ waiter: Waiter) -> Bool {
        guard let index = self.queue.firstIndex(of: waiter) else { return false }
        self.queue.remove(at: index)
        self.timedOut += 1
        return true
    }

    /// A waiting request went away (the client closed); `true` if it was still waiting.
    public mutating func waitCancelled(_ waiter: Waiter) -> Bool {
        guard let index = self.queue.firstIndex(of: waiter) else { return false }
        self.queue.remove(at: index)
        return true
    }
}
