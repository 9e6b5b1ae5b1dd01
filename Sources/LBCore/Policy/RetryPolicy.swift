/// Why an attempt to serve a request from one backend failed, as the proxy observed it.
public enum AttemptFailure: Sendable, Hashable {
    /// The connection could not be made (refused, unreachable, reset during the handshake): nothing
    /// was sent, so any method is safe to retry.
    case connectFailed
    /// The connection was not made within the connect timeout: nothing was sent.
    case connectTimedOut
    /// The backend answered with this status.
    case status(Int)
    /// The request was sent but no response header arrived in time.
    case responseTimedOut
    /// The connection broke after the request was (perhaps partly) sent and before a response.
    case connectionReset

    /// Whether the request may have reached the backend's application.
    public var requestMayHaveBeenProcessed: Bool {
        switch self {
        case .connectFailed, .connectTimedOut: false
        case .status, .responseTimedOut, .connectionReset: true
        }
    }
}

/// Which failures are retried (Envoy's `retry_on`, HAProxy's `retry-on`).
public enum RetryCondition: String, Sendable, Hashable, Codable, CaseIterable {
    /// A connection that could not be made, or not in time.
    case connectFailure = "connect-failure"
    /// A 502 response.
    case badGateway = "502"
    /// A 503 response.
    case serviceUnavailable = "503"
    /// A 504 response.
    case gatewayTimeout = "504"
    /// Any 5xx response.
    case anyServerError = "5xx"
    /// No response header in time.
    case responseTimeout = "response-timeout"
    /// The connection broke before a response.
    case reset = "reset"

    /// Whether `failure` is one this condition retries.
    public func matches(_ failure: AttemptFailure) -> Bool {
        switch (self, failure) {
        case (.connectFailure, .connectFailed), (.connectFailure, .connectTimedOut): true
        case (.badGateway, .status(502)), (.serviceUnavailable, .status(503)), (.gatewayTimeout, .status(504)): true
        case (.anyServerError, .status(let code)): (500...599).contains(code)
        case (.responseTimeout, .responseTimedOut): true
        case (.reset, .connectionReset): true
        default: false
        }
    }
}

/// Whether and when to retry a failed attempt on another backend.
///
/// A failure is retried when it matches one of `retryOn`, attempts remain, and the method allows it:
/// idempotent methods (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) always; others only
/// when `retryNonIdempotent` is set — except after a failure that sent nothing (a failed or timed-out
/// connect), which is safe for every method. The wait before each retry is drawn by ``Backoff``; the
/// caller also asks the ``RetryBudget`` before it retries.
public struct RetryPolicy: Sendable, Hashable, Codable {
    /// Retries after the first attempt (0 turns retries off).
    public var maxRetries: Int
    /// The failures worth another attempt.
    public var retryOn: Set<RetryCondition>
    /// Retry POST, PATCH and other non-idempotent methods after failures that may have reached the
    /// backend's application.
    public var retryNonIdempotent: Bool
    /// The waits between attempts.
    public var backoff: Backoff

    /// Two retries on connect failure, 502, 503 and 504, idempotent methods only, Envoy's backoff.
    public init(
        maxRetries: Int = 2,
        retryOn: Set<RetryCondition> = [.connectFailure, .badGateway, .serviceUnavailable, .gatewayTimeout],
        retryNonIdempotent: Bool = false,
        backoff: Backoff = Backoff()
    ) {
        self.maxRetries = maxRetries
        self.retryOn = retryOn
        self.retryNonIdempotent = retryNonIdempotent
        self.backoff = backoff
    }

    /// The decision after a failed attempt.
    public enum Decision: Sendable, Hashable {
        /// Try another backend after waiting `after`.
        case retry(after: Duration)
        /// Give up and return the failure.
        case giveUp(GiveUpReason)
    }

    /// Why a failed attempt is not retried.
    public enum GiveUpReason: Sendable, Hashable {
        /// The failure is not one of `retryOn`.
        case notRetryable
        /// The method is not idempotent and the request may have been processed.
        case nonIdempotentMethod
        /// `maxRetries` retries were already made.
        case attemptsExhausted
    }

    /// Whether `method` is idempotent per RFC 9110.
    public static func isIdempotent(method: String) -> Bool {
        switch method.uppercased() {
        case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE": true
        default: false
        }
    }

    /// The decision after attempt number `attempt` (1 for the first) of a `method` request failed with
    /// `failure`.
    public func decide(
        method: String,
        failure: AttemptFailure,
        attempt: Int,
        using generator: inout SeededGenerator
    ) -> Decision {
        guard self.retryOn.contains(where: { $0.matches(failure) }) else { return .giveUp(.notRetryable) }
        if failure.requestMayHaveBeenProcessed, !self.retryNonIdempotent, !Self.isIdempotent(method: method) {
            return .giveUp(.nonIdempotentMethod)
        }
        guard attempt <= self.maxRetries else { return .giveUp(.attemptsExhausted) }
        return .retry(after: self.backoff.delay(beforeRetry: attempt, using: &generator))
    }
}
