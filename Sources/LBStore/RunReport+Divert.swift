import GRDB

/// How fast a proxy stops sending new requests to a backend that degrades: from a `slow` or `errors`
/// step on it, the picks that follow, in order, are read in windows of `window` picks (20 per backend
/// in service); the backend counts as diverted from at the first pick from which three windows in a
/// row each give it less than half its fair share (its weight over the weights of the backends in
/// service). Three windows, not one, so that an algorithm that never diverts (random, whose share in
/// one window of 80 picks falls below half a quarter about once in a thousand) is not taken for one
/// that did.
public enum DivertMeasure {
    /// The place among `picks` (each the picked backend, in order) from which `target` stays diverted,
    /// and how many of the picks before it went to `target`; `nil` place when it never diverts.
    public static func divert(picks: [Int], target: Int, fairShare: Double, window: Int) -> (index: Int?, before: Int) {
        precondition(window > 0 && fairShare > 0)
        // prefix[i]: picks of the target among the first i.
        var prefix = [0]
        prefix.reserveCapacity(picks.count + 1)
        for pick in picks { prefix.append(prefix[prefix.count - 1] + (pick == target ? 1 : 0)) }
        let limit = fairShare / 2 * Double(window)
        var index = 0
        while index + 3 * window <= picks.count {
            let below = (0..<3).allSatisfy { k in
                Double(prefix[index + (k + 1) * window] - prefix[index + k * window]) < limit
            }
            if below { return (index, prefix[index]) }
            index += 1
        }
        return (nil, prefix[picks.count])
    }
}

extension ResultsDatabase {
    /// The divert latency of run `id` (``RunReport/divertSeconds``), from the proxy's rows, or `nil`
    /// when it had no `slow` or `errors` step or no proxy rows after it.
    static func divert(_ db: Database, runID id: Int64) throws -> (seconds: Double, requests: Int)? {
        guard
            let step = try Row.fetchOne(
                db, sql: "SELECT t_us, subject FROM events WHERE run_id = ? AND kind IN ('slow', 'errors') ORDER BY t_us, rowid LIMIT 1", arguments: [id]
            )
        else { return nil }
        let at: Int64 = step["t_us"]
        let name: String = step["subject"]
        guard let target = try Int.fetchOne(db, sql: "SELECT id FROM backends WHERE run_id = ? AND name = ?", arguments: [id, name]) else { return nil }
        // The backend's next step (its latency or errors changed again, or it went away) ends the look.
        let until = try Int64.fetchOne(
            db, sql: "SELECT min(t_us) FROM events WHERE run_id = ? AND subject = ? AND t_us > ? AND kind NOT IN ('phase')", arguments: [id, name, at]
        ) ?? .max
        // The backends in service then: those picked in the second before the step, with their weights.
        let weights = try Row.fetchAll(
            db,
            sql: """
                SELECT b.id AS id, b.weight AS weight FROM backends b
                WHERE b.run_id = ? AND b.id IN (SELECT DISTINCT backend_id FROM proxy_requests WHERE run_id = ? AND picked_us >= ? AND picked_us < ?)
                """,
            arguments: [id, id, at - 1_000_000, at]
        )
        let total = weights.reduce(0.0) { $0 + ($1["weight"] as Double) }
        guard let own = weights.first(where: { ($0["id"] as Int) == target }), total > 0 else { return nil }
        let fairShare = (own["weight"] as Double) / total
        let rows = try Row.fetchAll(
            db,
            sql: "SELECT picked_us, backend_id FROM proxy_requests WHERE run_id = ? AND picked_us >= ? AND picked_us < ? AND backend_id IS NOT NULL ORDER BY picked_us, rowid",
            arguments: [id, at, until]
        )
        guard !rows.isEmpty else { return nil }
        let found = DivertMeasure.divert(picks: rows.map { $0["backend_id"] as Int }, target: target, fairShare: fairShare, window: 20 * weights.count)
        guard let index = found.index else { return (.infinity, found.before) }
        return (Double((rows[index]["picked_us"] as Int64) - at) / 1e6, found.before)
    }
}
