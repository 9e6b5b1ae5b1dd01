import LBConfig
import LBCore
import NIOCore
import Synchronization

/// The connection limit of one backend across every event loop (HAProxy's server `maxconn` with its
/// queue and `timeout queue`): LBCore's ``ConnectionLimiter`` behind a lock, and the way back to the
/// loop of a request that waited for a place.
final class BackendLimiter: Sendable {
    private struct State: Sendable {
        var limits: Service.Limits
        var limiter: ConnectionLimiter<Int>
        /// How to wake each waiting request, on its own loop.
        var wake: [Int: @Sendable () -> Void] = [:]
    }

    private let state: Mutex<State>
    private static let waiterIDs = Atomic<Int>(0)

    init(_ limits: Service.Limits) {
        self.state = Mutex(
            State(
                limits: limits,
                limiter: ConnectionLimiter(maxActive: limits.maxConnections, maxQueued: limits.maxQueued, queueTimeout: limits.queueTimeout)
            )
        )
    }

    /// The limits now.
    var limits: Service.Limits {
        self.state.withLock { $0.limits }
    }

    /// Takes up `limits` (a reload): requests that a higher limit lets through proceed at once; see
    /// ``ConnectionLimiter/setLimits(maxActive:maxQueued:queueTimeout:)`` for the rest.
    func update(_ limits: Service.Limits) {
        let woken: [@Sendable () -> Void] = self.state.withLock { state in
            guard state.limits != limits else { return [] }
            state.limits = limits
            let proceeding = state.limiter.setLimits(
                maxActive: limits.maxConnections,
                maxQueued: limits.maxQueued,
                queueTimeout: limits.queueTimeout
            )
            return proceeding.compactMap { state.wake.removeValue(forKey: $0) }
        }
        for wake in woken { wake() }
    }

    /// What happens to a new request.
    enum Admission {
        case proceed
        /// It waits as `id`; `wake` runs (on whatever thread frees a place) when it may proceed.
        case wait(id: Int, deadline: Instant)
        case reject
    }

    /// Asks for a place; `wake` is made and kept only if the request must wait (so the common case
    /// allocates nothing).
    func admit(now: Instant, wake: @autoclosure () -> @Sendable () -> Void) -> Admission {
        let id = Self.waiterIDs.add(1, ordering: .relaxed).newValue
        return self.state.withLock { state in
            switch state.limiter.requestArrived(id, now: now) {
            case .proceed:
                return .proceed
            case .reject:
                return .reject
            case .wait(let deadline):
                state.wake[id] = wake()
                return .wait(id: id, deadline: deadline)
            }
        }
    }

    /// A request that held a place finished: its place goes to the oldest waiter, if any.
    func release() {
        let next: (@Sendable () -> Void)? = self.state.withLock { state in
            guard let waiter = state.limiter.requestFinished() else { return nil }
            return state.wake.removeValue(forKey: waiter)
        }
        next?()
    }

    /// A waiting request reached its deadline: `true` if it was still waiting (it gets a 503).
    func timedOut(_ id: Int) -> Bool {
        self.state.withLock { state in
            state.wake[id] = nil
            return state.limiter.waitTimedOut(id)
        }
    }

    /// A waiting request went away.
    func cancel(_ id: Int) {
        self.state.withLock { state in
            state.wake[id] = nil
            _ = state.limiter.waitCancelled(id)
        }
    }
}
