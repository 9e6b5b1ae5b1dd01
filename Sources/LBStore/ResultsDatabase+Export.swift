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
    ///
    /// `runs.csv` carries each sweep point's parameters as columns of their own after the table's:
    /// `point`, `point_label`, `capacity` and `sweep.FIELD` for every field a run of the file swept
    /// (from `params_json`), empty for runs outside a sweep.
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
                let sweepColumns = table == "runs" ? try Self.sweepColumns(db, filter: filter, runID: runID) : []
                var buffer = Self.csvLine(columns + sweepColumns)
                var count = 0
                for source in sources {
                    let cursor = try Row.fetchCursor(
                        db,
                        sql: "SELECT * FROM \(source)\(filter) ORDER BY rowid",
                        arguments: StatementArguments(runID.map { [$0] } ?? [])
                    )
                    while let row = try cursor.next() {
                        var fields = columns.map { Self.csvField(row[$0] as DatabaseValue) }
                        if !sweepColumns.isEmpty { fields += Self.sweepFields(row["params_json"], columns: sweepColumns) }
                        buffer += Self.csvLine(fields)
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

    /// The sweep's columns of the runs `filter` selects: none when no run is at a sweep point.
    private static func sweepColumns(_ db: Database, filter: String, runID: Int64?) throws -> [String] {
        var fields = Set<String>()
        var any = false
        let params = try String?.fetchAll(db, sql: "SELECT params_json FROM runs\(filter)", arguments: StatementArguments(runID.map { [$0] } ?? []))
        for json in params {
            guard let object = Self.jsonObject(json), let sweep = object["sweep"] as? [String: Any] else { continue }
            any = true
            fields.formUnion(sweep.keys)
        }
        return any ? ["point", "point_label", "capacity"] + fields.sorted().map { "sweep.\($0)" } : []
    }

    /// A run's values of the sweep `columns`, from its `params_json`.
    private static func sweepFields(_ json: String?, columns: [String]) -> [String] {
        let object = Self.jsonObject(json) ?? [:]
        let sweep = object["sweep"] as? [String: Any] ?? [:]
        return columns.map { column in
            let value = column.hasPrefix("sweep.") ? sweep[String(column.dropFirst("sweep.".count))] : object[column]
            switch value {
            case let number as NSNumber: return number.stringValue
            case let text as String: return text
            default: return ""
            }
        }
    }

    private static func jsonObject(_ json: String?) -> [String: Any]? {
        guard let data = json?.data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
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
