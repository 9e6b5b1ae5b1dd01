/// A retry budget (Envoy's `retry_budget`, Finagle's `RetryBudget`): retries in flight may be at most a
/// share of all requests in flight, with a floor so that a quiet service can still retry.
///
/// Without a budget, a backend failing under load draws up to (1 + maxRetries) times its traffic from
/// retries and turns an overload into a collapse. With one, a retry may start only while
/// `activeRetries < max(minimumConcurrency, ⌊share × activeRequests⌋)`.
public struct RetryBudget: Sendable, Hashable {
    /// The share of in-flight requests that may be retries (Envoy's default: 20%). It may change while
    /// requests are in flight (a reload): the counts stay, and the next retry is judged by the new one.
    public var share: Double
    /// Retries allowed in flight whatever the share says (Envoy's default: 3); it may change as
    /// ``share`` may.
    public var minimumConcurrency: Int
    /// Requests in flight, retries included.
    public private(set) var activeRequests = 0
    /// Retries in flight.
    public private(set) var activeRetries = 0
    /// Retries refused so far, for the metrics.
    public private(set) var refused = 0

    /// A budget of `share` of in-flight requests, with `minimumConcurrency` retries always allowed.
    public init(share: Double = 0.2, minimumConcurrency: Int = 3) {
        self.share = share
        self.minimumConcurrency = minimumConcurrency
    }

    /// How many retries may be in flight now.
    public var limit: Int {
        Swift.max(self.minimumConcurrency, Int((self.share * Double(self.activeRequests)).rounded(.down)))
    }

    /// A first attempt started.
    public mutating func requestStarted() {
        self.activeRequests += 1
    }

    /// A first attempt ended (and any retries of it were counted by ``retryFinished()``).
    public mutating func requestFinished() {
        precondition(self.activeRequests > 0, "RetryBudget.requestFinished() without a request in flight")
        self.activeRequests -= 1
    }

    /// Asks to start a retry; `true` means it is within the budget and now counts against it.
    public mutating func retryStarted() -> Bool {
        guard self.activeRetries < self.limit else {
            self.refused += 1
            return false
        }
        self.activeRetries += 1
        self.activeRequests += 1
        return true
    }

    /// A retry that ``retryStarted()`` allowed has ended.
    public mutating func retryFinished() {
        precondition(self.activeRetries > 0, "RetryBudget.retryFinished() without a retry in flight")
        self.activeRetries -= 1
        self.activeRequests -= 1
    }
}
