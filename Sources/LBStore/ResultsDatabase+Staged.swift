import Foundation
import GRDB

extension ResultsDatabase {
    /// The two tables whose records a run stages while it records (``RecordChunk``).
    static let stagedTables = ["requests", "proxy_requests"]

    /// Runs `body` on a read connection on which `requests` and `proxy_requests` also hold the records
    /// still staged: those of a run that is recording now (or of one whose recorder died in another
    /// process that this one cannot tell has ended), `runID`'s only when given. A report or an export
    /// of a run in progress so sees everything it has recorded, in one snapshot of the file.
    ///
    /// The staged chunks are decoded into temporary tables, and temporary views named after the two
    /// tables put their rows after the table's own (temporary names come first in SQLite's lookup); all
    /// of it lives on the connection only, and is dropped before it is handed back. The file itself is
    /// not written. Without staged records, `body` runs on the tables as they are. A chunk this LBLab
    /// cannot read (a newer format, a damaged file) is left out, and a line on standard error says so.
    func readIncludingStaged<T>(runID: Int64?, _ body: (_ db: Database, _ stagedRows: Int) throws -> T) throws(StoreError) -> T {
        try self.read { db in
            let chunks = try Int64.fetchAll(
                db,
                sql: "SELECT id FROM main.staged_records WHERE ?1 IS NULL OR run_id = ?1 ORDER BY id",
                arguments: [runID]
            )
            guard !chunks.isEmpty else { return try body(db, 0) }
            func dropTemporaries() throws {
                for table in Self.stagedTables {
                    try db.execute(sql: "DROP VIEW IF EXISTS temp.\(table)")
                    try db.execute(sql: "DROP TABLE IF EXISTS temp.staged_\(table)")
                }
            }
            // Dropped first too: a connection whose last drop failed may still hold them.
            try dropTemporaries()
            defer { try? dropTemporaries() }
            for table in Self.stagedTables {
                try db.execute(sql: "CREATE TEMP TABLE staged_\(table) AS SELECT * FROM main.\(table) WHERE 0")
                try db.execute(
                    sql: "CREATE TEMP VIEW \(table) AS SELECT * FROM main.\(table) UNION ALL SELECT * FROM temp.staged_\(table)"
                )
            }
            var rows = 0
            for chunk in chunks {
                do {
                    rows += try BatchWriter.copyStaged(chunk: chunk, in: db)
                } catch let error as RecordChunk.Malformed {
                    let line = "lblab: \(self.path): staged records \(chunk) cannot be read and are left out: \(error)\n"
                    FileHandle.standardError.write(Data(line.utf8))
                }
            }
            return try body(db, rows)
        }
    }
}
