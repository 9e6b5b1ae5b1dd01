import LBCore

/// When an event loop gives its core away (``LBConfig/ProxyConfiguration/yieldInterval``): after the
/// writes of a tick, at most once per interval.
///
/// The writes of a tick wake their readers, wrk or a backend, and the scheduler may wake one onto the
/// loop's own core. A loop that is never idle then keeps that core for the scheduler's whole slice
/// (about a millisecond and a half here) while the reader waits with the answers it was just sent, and
/// so do all the requests it holds: that wait was the proxy's 99th percentile on a shared machine,
/// about 1.1× HAProxy's, which sleeps between short batches. A yield when nothing else is runnable on
/// the core returns at once.
struct CoreYield {
    /// Nanoseconds between two yields at least; 0: never.
    var intervalNanos: UInt64
    private var lastNanos: UInt64 = 0

    init(interval: Duration) {
        self.intervalNanos = UInt64(clamping: interval.nanoseconds)
    }

    /// Whether the loop should yield at `now` (uptime nanoseconds); if so, the yield is counted as done.
    mutating func isDue(at now: UInt64) -> Bool {
        guard self.intervalNanos > 0, now &- self.lastNanos >= self.intervalNanos else { return false }
        self.lastNanos = now
        return true
    }

    /// Takes up a reloaded interval; the time of the last yield stays.
    mutating func retime(_ interval: Duration) {
        self.intervalNanos = UInt64(clamping: interval.nanoseconds)
    }
}
