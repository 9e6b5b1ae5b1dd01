/// What a picker knows of the request it routes.
///
/// Keys are hashes, computed once by the caller with ``StableHash``: the proxy hashes the client's
/// address and the attribute the service's configuration names (a header, a cookie, the path); the
/// simulator and the load generator hash their synthetic values the same way.
public struct PickRequest: Sendable {
    /// The time of the pick.
    public var now: Instant
    /// The hash of the client's address (the socket peer, or a trusted `X-Forwarded-For`), if known.
    public var clientKey: UInt64?
    /// The hash of the request attribute a hash-based algorithm is configured to use, if present.
    public var hashKey: UInt64?

    /// A request at `now` with the given keys.
    @inlinable
    public init(now: Instant, clientKey: UInt64? = nil, hashKey: UInt64? = nil) {
        self.now = now
        self.clientKey = clientKey
        self.hashKey = hashKey
    }
}

/// A load-balancing algorithm: chooses one backend of the current snapshot for each request.
///
/// A picker is a value owned by one event loop (or by the simulator) and is never shared, so it needs
/// no lock; what must be shared between event loops lives in each ``BackendState``. The caller:
/// - calls ``rebuild(_:)`` with a new snapshot when backends are added, removed or re-weighted;
/// - calls ``pick(_:)`` per request, and `BackendState.requestStarted()` on the backend chosen;
/// - calls `BackendState.requestFinished()` and then ``requestFinished(on:latency:now:)`` when the
///   request completes.
///
/// Every picker skips backends that are not ``Backend/isEligible`` and returns `nil` ("none available")
/// instead of failing when there is nothing to choose. Randomness comes from a ``SeededGenerator`` the
/// picker owns, so the same seed and the same calls give the same picks.
public protocol Picker {
    /// The algorithm this picker implements.
    var algorithm: Algorithm { get }

    /// Replaces the backend snapshot. State worth keeping (a rotation position, smooth-WRR credit, sticky
    /// assignments) follows each backend by name into the new snapshot.
    mutating func rebuild(_ backends: [Backend])

    /// The index in the current snapshot of the backend that should serve `request`, or `nil` when no
    /// backend is eligible.
    mutating func pick(_ request: PickRequest) -> Int?

    /// Tells the picker that a request it routed to `state` completed after `latency`.
    mutating func requestFinished(on state: BackendState, latency: Duration, now: Instant)
}

extension Picker {
    /// Most pickers read everything they need from ``BackendState`` and ignore completions.
    public mutating func requestFinished(on state: BackendState, latency: Duration, now: Instant) {}
}
