/// What follows a failed attempt of a request: the decision the proxy and the simulator both make with
/// ``RetryPolicy/nextAttempt(after:method:attempt:canReplay:budget:holdsRetry:using:)``.
public enum NextAttempt: Sendable, Hashable {
    /// Try another backend at once: nothing reached a backend (Finagle's requeue).
    case requeue
    /// Try another backend after the backoff; the retry holds a place in the budget.
    case retry(after: Duration)
    /// Answer the client with the failure.
    case giveUp
}

extension RetryPolicy {
    /// What follows `failure` of attempt number `attempt` (1 for the first) of a `method` request, by
    /// this policy and `budget`.
    ///
    /// A failure the policy does not retry, or a request whose body cannot be sent again (`canReplay`
    /// false), is given up. One that sent nothing (a refused or timed-out connect) goes to another
    /// backend at once: it adds load to no one, so only the attempt limit bounds it, not the budget.
    /// Any other retry waits its backoff and must fit the budget. `holdsRetry` says whether the failed
    /// attempt held a place in the budget (it is given back) and becomes whether the next one does.
    public func nextAttempt(
        after failure: AttemptFailure,
        method: String,
        attempt: Int,
        canReplay: Bool,
        budget: inout RetryBudget,
        holdsRetry: inout Bool,
        using generator: inout SeededGenerator
    ) -> NextAttempt {
        let decision = self.decide(method: method, failure: failure, attempt: attempt, using: &generator)
        guard case .retry(let delay) = decision, canReplay else { return .giveUp }
        if !failure.requestMayHaveBeenProcessed {
            return .requeue
        }
        if holdsRetry {
            budget.retryFinished()
            holdsRetry = false
        }
        guard budget.retryStarted() else { return .giveUp }
        holdsRetry = true
        return .retry(after: delay)
    }
}

extension Picker {
    /// The index of a backend for `request` other than those `tried` (the states of the backends a
    /// retried request already failed on) whenever another is available, or `nil` when none is;
    /// `state(i)` is the state of the snapshot's backend `i`, of `count`.
    ///
    /// The picker is asked a few times first, so that its own choice among the others stands (a rotation
    /// moves on, a random draw draws again). Load-aware pickers keep choosing a backend that fails fast,
    /// since it never holds a request; then the least loaded of the other available backends is taken.
    public mutating func pick(
        _ request: PickRequest,
        avoiding tried: [ObjectIdentifier],
        count: Int,
        state: (Int) -> BackendState
    ) -> Int? {
        var choice = self.pick(request)
        guard !tried.isEmpty else { return choice }
        var tries = 1
        while let picked = choice, tried.contains(ObjectIdentifier(state(picked))), tries < 4 {
            choice = self.pick(request)
            tries += 1
        }
        if let picked = choice, tried.contains(ObjectIdentifier(state(picked))) {
            let others = (0..<count).filter { index in
                let candidate = state(index)
                return candidate.isAvailable && !tried.contains(ObjectIdentifier(candidate))
            }
            if let least = others.min(by: { state($0).inFlight < state($1).inFlight }) {
                choice = least
            }
        }
        return choice
    }
}
