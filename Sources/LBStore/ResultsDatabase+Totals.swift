import Foundation
import GRDB
public import LBCore

extension ResultsDatabase {
    /// Stores the totals of run `id`, one that kept no row per request (``RunTotals``), replacing any
    /// it had. Its report reads them instead of rows.
    public func recordTotals(_ totals: RunTotals, runID id: Int64) throws(StoreError) {
        do {
            try self.dbWriter.write { db in
                for table in ["totals", "totals_latency", "totals_errors"] {
                    try db.execute(sql: "DELETE FROM \(table) WHERE run_id = ?", arguments: [id])
                }
                try db.execute(
                    sql: """
                        INSERT INTO totals (run_id, backend_id, window_start_us, window_end_us, requests, responses, errors,
                            corrected_sum_us, service_sum_us, proxy_requests, retries, imbalance_per_second,
                            remapped_on_add, remapped_on_remove)
                        VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        id, totals.window.lowerBound, totals.window.upperBound, totals.run.requests, totals.run.responses,
                        totals.run.errors, totals.run.corrected.sumMicros, totals.run.service.sumMicros, totals.proxyRequests,
                        totals.retries, totals.imbalancePerSecond, totals.remappedOnAdd, totals.remappedOnRemove,
                    ]
                )
                let part = try db.makeStatement(
                    sql: """
                        INSERT INTO totals (run_id, backend_id, window_start_us, window_end_us, requests, responses, errors,
                            corrected_sum_us, service_sum_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """
                )
                let bucket = try db.makeStatement(
                    sql: "INSERT INTO totals_latency (run_id, backend_id, measure, value_us, count) VALUES (?, ?, ?, ?, ?)"
                )
                for backend in totals.backends {
                    try part.execute(arguments: [
                        id, backend.backendID, totals.window.lowerBound, totals.window.upperBound, backend.requests,
                        backend.responses, backend.errors, backend.corrected.sumMicros, backend.service.sumMicros,
                    ])
                }
                for item in [totals.run] + totals.backends {
                    // A service histogram equal to the corrected one (a run whose requests all went out on
                    // time, as simulated ones do) is not written twice: its absence says so.
                    let measures = item.service == item.corrected ? [("corrected", item.corrected)] : [("corrected", item.corrected), ("service", item.service)]
                    for (measure, latency) in measures {
                        for entry in latency.buckets {
                            try bucket.execute(arguments: [id, item.backendID, measure, entry.valueMicros, entry.count])
                        }
                    }
                }
                for (kind, count) in totals.errorsByKind {
                    try db.execute(sql: "INSERT INTO totals_errors (run_id, kind, count) VALUES (?, ?, ?)", arguments: [id, kind, count])
                }
            }
        } catch {
            throw .sqlite(path: self.path, message: "could not record the totals of run \(id): \(error)")
        }
    }

    /// The totals of run `id`, when it stored them instead of rows.
    public func totals(runID id: Int64) throws(StoreError) -> RunTotals? {
        try self.read { db in try Self.totals(runID: id, db) }
    }

    static func totals(runID id: Int64, _ db: Database) throws -> RunTotals? {
        let rows = try Row.fetchAll(db, sql: "SELECT * FROM totals WHERE run_id = ? ORDER BY backend_id IS NOT NULL, backend_id", arguments: [id])
        guard let first = rows.first, (first["backend_id"] as Int?) == nil else { return nil }
        var buckets: [Int?: [String: [RunTotals.Bucket]]] = [:]
        for row in try Row.fetchAll(
            db, sql: "SELECT backend_id, measure, value_us, count FROM totals_latency WHERE run_id = ? ORDER BY backend_id, measure, value_us", arguments: [id]
        ) {
            buckets[row["backend_id"] as Int?, default: [:]][row["measure"] as String, default: []]
                .append(RunTotals.Bucket(valueMicros: row["value_us"], count: row["count"]))
        }
        func part(_ row: Row) -> RunTotals.Part {
            let backendID: Int? = row["backend_id"]
            return RunTotals.Part(
                backendID: backendID, requests: row["requests"], responses: row["responses"], errors: row["errors"],
                corrected: RunTotals.Latency(sumMicros: row["corrected_sum_us"], buckets: buckets[backendID]?["corrected"] ?? []),
                service: RunTotals.Latency(sumMicros: row["service_sum_us"], buckets: buckets[backendID]?["service"] ?? buckets[backendID]?["corrected"] ?? [])
            )
        }
        let errors = try Row.fetchAll(db, sql: "SELECT kind, count FROM totals_errors WHERE run_id = ?", arguments: [id])
        return RunTotals(
            window: (first["window_start_us"] as Int64)...(first["window_end_us"] as Int64),
            run: part(first),
            backends: rows.dropFirst().map(part),
            errorsByKind: Dictionary(uniqueKeysWithValues: errors.map { ($0["kind"] as String, $0["count"] as Int) }),
            proxyRequests: first["proxy_requests"] ?? 0,
            retries: first["retries"] ?? 0,
            imbalancePerSecond: first["imbalance_per_second"],
            remappedOnAdd: first["remapped_on_add"],
            remappedOnRemove: first["remapped_on_remove"]
        )
    }
}
