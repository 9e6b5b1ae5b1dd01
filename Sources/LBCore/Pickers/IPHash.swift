/// Source-address affinity (`ip-hash`; HAProxy's `balance source` with `hash-type consistent`, nginx's
/// `ip_hash`, the `SIH` of the Go balancers).
///
/// The client's address (its socket peer, or `X-Forwarded-For` from a trusted source, hashed by the
/// caller into ``PickRequest/clientKey``) is placed on a consistent-hash ring, so one client keeps its
/// backend and a change of n backends remaps only ~1/n of the clients. No load bound applies: affinity
/// is the point. Requests without a client key go to a random point. O(log(n·v)) per pick.
public struct IPHash: Picker {
    public var algorithm: Algorithm { .ipHash }
    private var ring: ConsistentHash

    /// A source-address picker with `virtualNodes` ring points per unit of weight.
    public init(virtualNodes: Int = 160, seed: UInt64 = 0) {
        self.ring = ConsistentHash(
            algorithm: .ipHash,
            virtualNodes: virtualNodes,
            loadFactor: nil,
            clientKeyOnly: true,
            seed: seed
        )
    }

    public mutating func rebuild(_ backends: [Backend]) {
        self.ring.rebuild(backends)
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        self.ring.pick(request)
    }
}
