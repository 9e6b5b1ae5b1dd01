import Foundation
import GRDB

extension ResultsDatabase {
    /// The tables `lbctl export` writes, in the order of DESIGN §5.
    public static let exportedTables = [
        "runs", "backends", "requests", "proxy_requests", "samples", "events", "totals", "totals_latency", "totals_errors",
    ]

    /// Writes one CSV file per table into `directory` (RFC 4180: a header row, fields quoted when they
    /// hold a comma, a quote or a line break, quotes doubled, CRLF line ends; NULL as an empty field),
    /// only the rows of `runID` when given, all from one snapshot of the file. The records a run still
    /// recording has staged are written as rows too, after the table's own. Returns each file's path
    /// with its row count.
    public func exportCSV(to directory: String, runID: Int64? = nil) throws(StoreError) -> [(path: String, rows: Int)] {
        if let runID, try self.run(id: runID) == nil { throw .noSuchRun(path: self.path, run: runID) }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .sqlite(path: directory, message: "cannot make the directory: \(error)")
        }
        return try self.readIncludingStaged(runID: runID) { db, stagedRows in
            var written: [(String, Int)] = []
            for table in Self.exportedTables {
                let path = "\(directory)/\(table).csv"
                let filter = runID == nil ? "" : " WHERE \(table == "runs" ? "id" : "run_id") = ?"
                // A table's own rows in the order they went in, then the staged ones in theirs.
                var sources = ["main.\(table)"]
                if stagedRows > 0 && Self.stagedTables.contains(table) { sources.append("temp.staged_\(table)") }
                guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                    throw StoreError.sqlite(path: path, message: "cannot be written")
                }
                defer { try? handle.close() }
                let columns = try db.columns(in: table, in: "main").map(\.name)
                var buffer = Self.csvLine(columns)
                var count = 0
                for source in sources {
                    let cursor = try Row.fetchCursor(
                        db,
                        sql: "SELECT * FROM \(source)\(filter) ORDER BY rowid",
                        arguments: StatementArguments(runID.map { [$0] } ?? [])
                    )
                    while let row = try cursor.next() {
                        buffer += Self.csvLine(columns.map { Self.csvField(row[$0] as DatabaseValue) })
                        count += 1
                        if buffer.utf8.count >= 1 << 20 {
                            handle.write(Data(buffer.utf8))
                            buffer = ""
                        }
                    }
                }
                handle.write(Data(buffer.utf8))
                written.append((path, count))
            }
            return written
        }
    }

    /// One CSV record: fields quoted where RFC 4180 needs it, ended by CRLF.
    static func csvLine(_ fields: [String]) -> String {
        fields.map { field in
            guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
            return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }.joined(separator: ",") + "\r\n"
    }

    /// A value as CSV text: NULL empty, numbers as SQLite prints them, text as is, blobs in hex.
    static func csvField(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: return ""
        case .int64(let number): return String(number)
        case .double(let number): return String(number)
        case .string(let text): return text
        case .blob(let data): return data.map { String(format: "%02x", $0) }.joined()
        }
    }
}
