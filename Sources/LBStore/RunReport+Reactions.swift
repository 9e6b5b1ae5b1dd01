import GRDB

/// How the proxy and a hashing algorithm reacted to the timeline: the time to eject and readmit a
/// backend, and the share of keys that moved when the membership changed.
extension ResultsDatabase {
    /// The share of keys whose backend changed across the first `change` event (`add` or `remove`):
    /// each key's backend is the one that served most of its requests before the change (since the
    /// previous membership change, or the window's start) and after it (from 1 s after, the time the
    /// proxy takes to apply it, until the next change or the window's end); keys seen on both sides
    /// count. `nil` when the run has no such change or no keys.
    static func remappedShare(_ db: Database, runID: Int64, change: String, window: ClosedRange<Int64>) throws -> Double? {
        let changes = try Row.fetchAll(
            db, sql: "SELECT t_us, kind FROM events WHERE run_id = ? AND kind IN ('add', 'remove') ORDER BY t_us", arguments: [runID]
        ).map { (t: $0["t_us"] as Int64, kind: $0["kind"] as String) }
        guard let index = changes.firstIndex(where: { $0.kind == change }) else { return nil }
        let at = changes[index].t
        let settle: Int64 = 1_000_000
        // Changes less than the settling second apart leave no stretch to compare.
        let beforeStart = index > 0 ? changes[index - 1].t + settle : window.lowerBound
        let afterEnd = index + 1 < changes.count ? changes[index + 1].t : window.upperBound
        guard beforeStart < at, at + settle < afterEnd else { return nil }
        let before = beforeStart..<at
        let after = (at + settle)..<afterEnd
        let majority = """
            SELECT key, backend_id FROM (
                SELECT key, backend_id, row_number() OVER (PARTITION BY key ORDER BY count(*) DESC, backend_id) AS rank
                FROM requests WHERE run_id = ? AND key IS NOT NULL AND backend_id IS NOT NULL AND intended_us >= ? AND intended_us < ?
                GROUP BY key, backend_id
            ) WHERE rank = 1
            """
        let row = try Row.fetchOne(
            db,
            sql: """
                SELECT count(*) AS keys, sum(CASE WHEN a.backend_id <> b.backend_id THEN 1 ELSE 0 END) AS moved
                FROM (\(majority)) a JOIN (\(majority)) b ON a.key = b.key
                """,
            arguments: [runID, before.lowerBound, before.upperBound, runID, after.lowerBound, after.upperBound]
        )
        let keys: Int = row?["keys"] ?? 0
        guard keys > 0 else { return nil }
        return Double(row?["moved"] as Int? ?? 0) / Double(keys)
    }

    /// Seconds from the first event of a kind in `faults` to the first event of a kind in `reactions`
    /// about the same backend at or after it.
    static func reaction(_ db: Database, _ runID: Int64, faults: [String], reactions: [String]) throws -> Double? {
        let list = { (kinds: [String]) in kinds.map { "'\($0)'" }.joined(separator: ", ") }
        let micros = try Int64.fetchOne(
            db,
            sql: """
                SELECT (SELECT min(r.t_us) FROM events r WHERE r.run_id = f.run_id AND r.subject = f.subject
                        AND r.kind IN (\(list(reactions))) AND r.t_us >= f.t_us) - f.t_us
                FROM events f WHERE f.run_id = ? AND f.kind IN (\(list(faults)))
                ORDER BY f.t_us LIMIT 1
                """,
            arguments: [runID]
        )
        return micros.map { Double($0) / 1e6 }
    }
}
