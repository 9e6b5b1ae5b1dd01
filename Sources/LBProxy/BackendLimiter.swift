import LBConfig
import LBCore
import NIOCore
import Synchronization

/// The connection limit of one backend across every event loop (HAProxy's server `maxconn` with its
/// queue and `timeout queue`): LBCore's ``ConnectionLimiter`` behind a lock, and the way back to the
/// loop of a request that waited for a place.
final class BackendLimiter: Sendable {
    private struct State: Sendable {
        var limiter: ConnectionLimiter<Int>
        /// How to wake each waiting request, on its own loop.
        var wake: [Int: @Sendable () -> Void] = [:]
    }

    private let state: Mutex<State>
    private static let waiterIDs = Atomic<Int>(0)
    let limits: Service.Limits

    init(_ limits: Service.Limits) {
        self.limits = limits
        self.state = Mutex(
            State(limiter: ConnectionLimiter(maxActive: limits.maxConnections, maxQueued: limits.maxQueued, queueTimeout: limits.queueTimeout))
        )
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
