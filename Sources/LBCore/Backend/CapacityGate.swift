public import DequeModule

/// Admission control of a backend that serves at most `capacity` requests at once and queues the rest
/// in arrival order (an M/M/c-like server when service times are exponential).
///
/// A pure state machine: it says whether an arriving request is served now, queued or refused, and
/// which queued request to start when one finishes; the caller does the starting. `Waiter` is whatever
/// the caller needs to start a queued request later. `lbctl backend` runs it under a lock; the
/// simulator runs the same machine for its backends in virtual time.
public struct CapacityGate<Waiter> {
    /// What to do with an arriving request.
    public enum Admission: Sendable, Hashable {
        /// Serve it now: it holds one of the `capacity` places.
        case serve
        /// It waits in the queue; ``requestFinished()`` hands it back when its turn comes.
        case queued
        /// The queue is full: refuse it (503).
        case refuse
    }

    /// Requests served at once; `nil` for no limit.
    public let capacity: Int?
    /// Requests that may wait; `nil` for no limit.
    public let queueLimit: Int?
    /// Requests holding a place.
    public var serving: Int { self._serving }
    // Visible to the inlinable calls below, which the simulator makes per request: specialized in the
    // caller's module, they cost no generic metadata lookup.
    @usableFromInline var _serving = 0
    @usableFromInline var waiting = Deque<Waiter>()

    /// A gate of `capacity` places (`nil`: no limit) with room for `queueLimit` waiters (`nil`: no limit).
    public init(capacity: Int?, queueLimit: Int?) {
        precondition(capacity.map { $0 >= 1 } ?? true, "a capacity must be at least 1")
        precondition(queueLimit.map { $0 >= 0 } ?? true, "a queue limit cannot be negative")
        self.capacity = capacity
        self.queueLimit = queueLimit
    }

    /// Requests waiting for a place.
    public var queued: Int { self.waiting.count }

    /// A request arrived.
    @inlinable
    public mutating func requestArrived(_ waiter: Waiter) -> Admission {
        if let capacity = self.capacity, self._serving >= capacity {
            if let limit = self.queueLimit, self.waiting.count >= limit {
                return .refuse
            }
            self.waiting.append(waiter)
            return .queued
        }
        self._serving += 1
        return .serve
    }

    /// A request that held a place finished. Returns the queued request that takes its place, if any.
    @inlinable
    public mutating func requestFinished() -> Waiter? {
        precondition(self._serving > 0, "requestFinished() with no request being served")
        if let next = self.waiting.popFirst() {
            return next  // the place passes to it: `serving` stays the same
        }
        self._serving -= 1
        return nil
    }
}

extension CapacityGate: Sendable where Waiter: Sendable {}
