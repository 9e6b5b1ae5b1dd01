import DequeModule

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
    public private(set) var serving = 0
    private var waiting = Deque<Waiter>()

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
    public mutating func requestArrived(_ waiter: Waiter) -> Admission {
        if let capacity = self.capacity, self.serving >= capacity {
            if let limit = self.queueLimit, self.waiting.count >= limit {
                return .refuse
            }
            self.waiting.append(waiter)
            return .queued
        }
        self.serving += 1
        return .serve
    }

    /// A request that held a place finished. Returns the queued request that takes its place, if any.
    public mutating func requestFinished() -> Waiter? {
        precondition(self.serving > 0, "requestFinished() with no request being served")
        if let next = self.waiting.popFirst() {
            return next  // the place passes to it: `serving` stays the same
        }
        self.serving -= 1
        return nil
    }
}

extension CapacityGate: Sendable where Waiter: Sendable {}
