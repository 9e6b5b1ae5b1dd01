import GRDB

/// A run second by second, so that a reader can tell a tail the algorithm caused from one a saturated
/// host caused: each second's requests, errors and latency, each backend's share of the answers, and
/// the CPU, throttling and memory every sampled process used in it.
public struct RunSeconds: Sendable {
    /// One second, counted from the load's start (as the timeline counts).
    public struct Second: Sendable {
        /// Its number: second `n` is `[n, n + 1)` after the load's start.
        public var second: Int
        /// Requests due in it, and of them failed (an error or a 5xx).
        public var requests: Int
        public var errors: Int
        /// The corrected latency of its answered requests (microseconds, nearest rank).
        public var p50: Int64?
        public var p99: Int64?
        /// Each backend's share (by id) of the requests answered by a backend.
        public var shares: [Int: Double]
        /// Each sampled source's CPU in cores over the second, its throttled time in seconds a second,
        /// and its resident memory at the second's last sample.
        public var cores: [String: Double]
        public var throttled: [String: Double]
        public var rssBytes: [String: Int64]
        /// The timeline's steps and the proxy's reactions in it (`slow b4`, `ejected b2`).
        public var events: [String]
    }

    /// The backends, by id.
    public var backends: [(id: Int, name: String)]
    /// The sources sampled (backends by name, `proxy`, `loadgen`, `host`).
    public var sources: [String]
    public var seconds: [Second]
}

extension ResultsDatabase {
    /// Run `id` second by second (``RunSeconds``), from its rows; empty seconds for a run that kept
    /// totals instead of rows.
    public func seconds(runID id: Int64) throws(StoreError) -> RunSeconds {
        try self.readIncludingStaged(runID: id) { db, _ in
            let origin = try Int64.fetchOne(db, sql: "SELECT min(t_us) FROM events WHERE run_id = ? AND kind = 'phase' AND subject = 'load'", arguments: [id]) ?? 0
            let backends = try Row.fetchAll(db, sql: "SELECT id, name FROM backends WHERE run_id = ? ORDER BY id", arguments: [id]).map { (id: $0["id"] as Int, name: $0["name"] as String) }
            var seconds: [Int: RunSeconds.Second] = [:]
            func second(_ n: Int) -> RunSeconds.Second {
                seconds[n] ?? RunSeconds.Second(second: n, requests: 0, errors: 0, shares: [:], cores: [:], throttled: [:], rssBytes: [:], events: [])
            }
            // Requests by their due second.
            var latencies: [Int: [Int64]] = [:]
            var served: [Int: [Int: Int]] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT intended_us, done_us, status, error, backend_id FROM requests WHERE run_id = ?", arguments: [id])
            while let row = try rows.next() {
                let due: Int64 = row["intended_us"]
                guard due >= origin else { continue }
                let n = Int((due - origin) / 1_000_000)
                var entry = second(n)
                entry.requests += 1
                let status: Int? = row["status"]
                let error: String? = row["error"]
                if error != nil || (status ?? 0) >= 500 { entry.errors += 1 }
                if status != nil, let done: Int64 = row["done_us"] { latencies[n, default: []].append(done - due) }
                if let backend: Int = row["backend_id"] { served[n, default: [:]][backend, default: 0] += 1 }
                seconds[n] = entry
            }
            for (n, values) in latencies {
                let sorted = values.sorted()
                let rank = { (p: Double) in sorted[max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1)] }
                seconds[n]?.p50 = rank(0.5)
                seconds[n]?.p99 = rank(0.99)
            }
            for (n, counts) in served {
                let total = Double(counts.values.reduce(0, +))
                seconds[n]?.shares = counts.mapValues { Double($0) / total }
            }
            // Samples: the change of each cumulative counter between the last samples at or before each
            // second's ends.
            let sources = try String.fetchAll(db, sql: "SELECT DISTINCT source FROM samples WHERE run_id = ? ORDER BY source", arguments: [id])
            let last = seconds.keys.max() ?? -1
            for source in sources {
                let samples = try Row.fetchAll(
                    db, sql: "SELECT t_us, cpu_usage_us, cpu_throttled_us, rss_bytes FROM samples WHERE run_id = ? AND source = ? ORDER BY t_us", arguments: [id, source]
                )
                var index = 0
                var previous: Row?
                for n in 0...max(0, last) {
                    let end = origin + Int64(n + 1) * 1_000_000
                    var latest = previous
                    while index < samples.count, (samples[index]["t_us"] as Int64) <= end {
                        latest = samples[index]
                        index += 1
                    }
                    guard let latest else { continue }
                    defer { previous = latest }
                    var entry = second(n)
                    entry.rssBytes[source] = latest["rss_bytes"]
                    if let before = previous, (latest["t_us"] as Int64) > (before["t_us"] as Int64) {
                        let span = Double((latest["t_us"] as Int64) - (before["t_us"] as Int64))
                        if let a: Int64 = before["cpu_usage_us"], let b: Int64 = latest["cpu_usage_us"] { entry.cores[source] = Double(b - a) / span }
                        if let a: Int64 = before["cpu_throttled_us"], let b: Int64 = latest["cpu_throttled_us"] { entry.throttled[source] = Double(b - a) / span }
                    }
                    seconds[n] = entry
                }
            }
            let events = try Row.fetchAll(db, sql: "SELECT t_us, kind, subject FROM events WHERE run_id = ? AND kind <> 'phase' ORDER BY t_us, rowid", arguments: [id])
            for event in events {
                let t: Int64 = event["t_us"]
                guard t >= origin else { continue }
                let n = Int((t - origin) / 1_000_000)
                var entry = second(n)
                entry.events.append("\(event["kind"] as String) \(event["subject"] as String? ?? "")")
                seconds[n] = entry
            }
            return RunSeconds(backends: backends, sources: sources, seconds: seconds.values.sorted { $0.second < $1.second })
        }
    }
}
