/// A token bucket: up to `burst` requests at once, `rate` per second sustained.
///
/// Tokens accrue continuously at `rate` per second up to `burst`; a request takes one. The bucket is
/// refilled lazily from the time elapsed since it was last used, so it costs nothing while idle.
public struct TokenBucket: Sendable, Hashable {
    /// Tokens added per second.
    public let rate: Double
    /// The most tokens the bucket holds.
    public let burst: Double
    private var tokens: Double
    private var updatedAt: Instant

    /// A full bucket at `now`.
    public init(rate: Double, burst: Double, now: Instant) {
        precondition(rate > 0 && burst >= 1, "TokenBucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updatedAt = now
    }

    /// Tokens available at `now`.
    public func available(now: Instant) -> Double {
        guard now > self.updatedAt else { return self.tokens }
        return min(self.burst, self.tokens + (now - self.updatedAt).seconds * self.rate)
    }

    /// Takes `count` tokens if there are enough at `now`.
    public mutating func take(_ count: Double = 1, now: Instant) -> Bool {
        let available = self.available(now: now)
        self.updatedAt = max(self.updatedAt, now)
        guard available >= count else {
            self.tokens = available
            return false
        }
        self.tokens = available - count
        return true
    }

    /// How long until `count` tokens are available (zero if they are now).
    public func wait(for count: Double = 1, now: Instant) -> Duration {
        let missing = count - self.available(now: now)
        guard missing > 0 else { return .zero }
        // Capped: a rate near zero would put it past what a duration holds.
        return .nanoseconds(capping: (missing / self.rate * 1e9).rounded(.up))
    }
}

/// Per-client rate limits: one ``TokenBucket`` per client key, for at most `capacity` clients.
///
/// A bucket that has refilled completely is equivalent to a new one, so when the table is full such
/// buckets are dropped first; if that frees less than a tenth of the table, the least recently used
/// buckets go until a tenth is free. Eviction thus runs at most once per capacity/10 new clients, and a
/// flood of new clients costs O(log capacity) per request, amortised. Memory stays bounded whatever the
/// number of clients.
public struct ClientRateLimiter<Key: Hashable & Sendable>: Sendable {
    private struct Entry: Sendable {
        var bucket: TokenBucket
        var lastUsed: Instant
    }

    /// Each client's sustained rate, per second.
    public let rate: Double
    /// Each client's burst.
    public let burst: Double
    /// The most clients tracked at once.
    public let capacity: Int
    private var entries: [Key: Entry] = [:]

    /// A limiter giving each client `rate` requests per second with bursts of `burst`.
    public init(rate: Double, burst: Double, capacity: Int = 100_000) {
        precondition(capacity > 0, "ClientRateLimiter needs a positive capacity")
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
    }

    /// Clients currently tracked.
    public var trackedClients: Int { self.entries.count }

    /// Whether `client` may make a request at `now` (and counts it if so).
    public mutating func allow(_ client: Key, now: Instant) -> Bool {
        if self.entries[client] == nil {
            if self.entries.count >= self.capacity {
                self.evict(now: now)
            }
            self.entries[client] = Entry(bucket: TokenBucket(rate: self.rate, burst: self.burst, now: now), lastUsed: now)
        }
        self.entries[client]!.lastUsed = now
        return self.entries[client]!.bucket.take(now: now)
    }

    private mutating func evict(now: Instant) {
        let burst = self.burst
        self.entries = self.entries.filter { $0.value.bucket.available(now: now) < burst }
        let target = self.capacity - max(1, self.capacity / 10)
        guard self.entries.count > target else { return }
        let byAge = self.entries.sorted { $0.value.lastUsed < $1.value.lastUsed }
        for (client, _) in byAge.prefix(self.entries.count - target) {
            self.entries[client] = nil
        }
    }
}
