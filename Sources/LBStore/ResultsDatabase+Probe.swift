import GRDB

extension ResultsDatabase {
    /// Successful answers (2xx) per second that reached the clients of run `id` between its `measure`
    /// and `drain` phases, counted by when they were answered: the rate its backends served at, which
    /// under overload is their saturation rate.
    public func servedRate(runID id: Int64) throws(StoreError) -> Double {
        try self.read { db in
            let phases = try Row.fetchAll(
                db, sql: "SELECT subject, min(t_us) AS t FROM events WHERE run_id = ? AND kind = 'phase' AND subject IN ('measure', 'drain') GROUP BY subject",
                arguments: [id]
            )
            let times = Dictionary(uniqueKeysWithValues: phases.map { ($0["subject"] as String, $0["t"] as Int64) })
            guard let start = times["measure"], let end = times["drain"], end > start else { return 0 }
            let served = try Int.fetchOne(
                db,
                sql: "SELECT count(*) FROM requests WHERE run_id = ? AND status BETWEEN 200 AND 299 AND done_us >= ? AND done_us < ?",
                arguments: [id, start, end]
            ) ?? 0
            return Double(served) / (Double(end - start) / 1e6)
        }
    }
}

extension ResultsDatabase {
    /// The configuration or scenario text run `id` recorded (`runs.config_yaml`), if any.
    public func configText(runID id: Int64) throws(StoreError) -> String? {
        try self.read { db in try String.fetchOne(db, sql: "SELECT config_yaml FROM runs WHERE id = ?", arguments: [id]) }
    }
}
