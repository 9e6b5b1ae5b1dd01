import GRDB
import GRDBSQLite
import LBCore

/// Writes one batch of records in the caller's transaction.
///
/// The two high-volume tables (`requests`, `proxy_requests`) are bound through SQLite's C API on GRDB's
/// cached prepared statements (`Statement.sqliteStatement`): GRDB's `StatementArguments` box every
/// value, which costs more than the insert itself at hundreds of thousands of rows per second. The
/// other tables use GRDB's arguments as usual.
struct BatchWriter {
    let runID: Int64
    /// Put before `requests` and `proxy_requests` in the statements that insert rows: `main.` for the
    /// tables themselves, `temp.staged_` for the temporary copies of
    /// ``ResultsDatabase/readIncludingStaged(runID:_:)``.
    private let rowTablePrefix: String
    /// Where chunks are packed (``RecordChunk/Buffer``).
    private let chunkBuffer = RecordChunk.Buffer()

    init(runID: Int64, rowTablePrefix: String = "main.") {
        self.runID = runID
        self.rowTablePrefix = rowTablePrefix
    }

    /// Writes `batch`. With a `writer` (``RunRecorder``'s name for its process), its request records go
    /// in as one chunk per table (``RecordChunk``), to become rows when the run ends
    /// (``unstage(chunk:in:)``), and their ids are returned.
    @discardableResult
    func write(_ batch: PendingRecords, to db: Database, stagingAs writer: String? = nil) throws -> [Int64] {
        var staged: [Int64] = []
        if !batch.backends.isEmpty {
            let statement = try db.cachedStatement(
                sql:
                    "INSERT OR REPLACE INTO backends (run_id, id, name, address, weight, spec_json) VALUES (?, ?, ?, ?, ?, ?)"
            )
            for backend in batch.backends {
                try statement.execute(arguments: [
                    self.runID, backend.id, backend.name, backend.address, backend.weight, backend.specJSON,
                ])
            }
        }
        if let writer {
            if !batch.requests.isEmpty {
                staged.append(
                    try self.stage(.requests, rows: batch.requests.count, writer: writer, db) {
                        RecordChunk.encode(batch.requests, into: self.chunkBuffer)
                    }
                )
            }
            if !batch.proxyRequests.isEmpty {
                staged.append(
                    try self.stage(.proxyRequests, rows: batch.proxyRequests.count, writer: writer, db) {
                        RecordChunk.encode(batch.proxyRequests, into: self.chunkBuffer)
                    }
                )
            }
        } else {
            try self.insertRows(of: batch, db)
        }
        if !batch.samples.isEmpty {
            let statement = try db.cachedStatement(sql: "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            for sample in batch.samples {
                try statement.execute(arguments: [
                    self.runID, sample.tMicros, sample.source, sample.cpuUsageMicros, sample.cpuThrottledMicros,
                    sample.rssBytes, sample.inFlight, sample.openFDs, sample.rxBytes, sample.txBytes,
                ])
            }
        }
        if !batch.events.isEmpty {
            let statement = try db.cachedStatement(sql: "INSERT INTO events VALUES (?, ?, ?, ?, ?)")
            for event in batch.events {
                try statement.execute(arguments: [
                    self.runID, event.tMicros, event.kind, event.subject, event.detailJSON,
                ])
            }
        }
        return staged
    }

    /// Inserts the request records of `batch` as rows.
    private func insertRows(of batch: PendingRecords, _ db: Database) throws {
        if !batch.requests.isEmpty {
            try self.insert(batch.requests, into: self.rowTablePrefix + "requests", columns: 15, db) { statement, offset, request in
                statement.bind(offset + 1, self.runID)
                statement.bind(offset + 2, request.id)
                statement.bind(offset + 3, Int64(request.clientID))
                statement.bind(offset + 4, request.clientIP)
                statement.bind(offset + 5, request.intendedMicros)
                statement.bind(offset + 6, request.sentMicros)
                statement.bind(offset + 7, request.firstByteMicros)
                statement.bind(offset + 8, request.doneMicros)
                statement.bind(offset + 9, request.status.map(Int64.init))
                statement.bind(offset + 10, request.backendID.map(Int64.init))
                statement.bind(offset + 11, Int64(request.attempts))
                statement.bind(offset + 12, request.bytesIn)
                statement.bind(offset + 13, request.bytesOut)
                statement.bind(offset + 14, request.error?.rawValue)
                statement.bind(offset + 15, request.key.map(Int64.init))
            }
        }
        if !batch.proxyRequests.isEmpty {
            try self.insert(batch.proxyRequests, into: self.rowTablePrefix + "proxy_requests", columns: 11, db) {
                statement,
                offset,
                request in
                statement.bind(offset + 1, self.runID)
                statement.bind(offset + 2, request.requestID)
                statement.bind(offset + 3, request.receivedMicros)
                statement.bind(offset + 4, request.pickedMicros)
                statement.bind(offset + 5, request.backendID.map(Int64.init))
                statement.bind(offset + 6, request.upstreamStartMicros)
                statement.bind(offset + 7, request.upstreamDoneMicros)
                statement.bind(offset + 8, request.status.map(Int64.init))
                statement.bind(offset + 9, Int64(request.attempts))
                statement.bind(offset + 10, request.retriedFrom.map(Int64.init))
                statement.bind(offset + 11, request.clientIP)
            }
        }
    }

    /// Inserts `rows` records of `kind` as one chunk, encoded by `encode`, and returns its id.
    private func stage(
        _ kind: RecordChunk.Kind,
        rows: Int,
        writer: String,
        _ db: Database,
        encode: () -> UnsafeRawBufferPointer
    ) throws -> Int64 {
        let statement = RawStatement(
            try db.cachedStatement(
                sql: "INSERT INTO staged_records (run_id, kind, row_count, writer, data) VALUES (?, ?, ?, ?, ?)"
            ),
            db
        )
        statement.bind(1, self.runID)
        statement.bind(2, kind.rawValue)
        statement.bind(3, Int64(rows))
        statement.bind(4, writer)
        statement.bind(5, encode())
        try statement.step()
        return db.lastInsertedRowID
    }

    /// Turns the chunk `id` into rows of its table and deletes it, in the caller's transaction. Returns
    /// the number of rows, or `nil` when there is no such chunk.
    static func unstage(chunk id: Int64, in db: Database) throws -> Int? {
        guard let (runID, batch, count) = try Self.decode(chunk: id, in: db) else { return nil }
        try BatchWriter(runID: runID).insertRows(of: batch, db)
        try db.execute(sql: "DELETE FROM staged_records WHERE id = ?", arguments: [id])
        return count
    }

    /// Inserts the records of chunk `id` into the temporary tables `temp.staged_requests` and
    /// `temp.staged_proxy_requests`, leaving the chunk where it is. Returns the number of rows.
    static func copyStaged(chunk id: Int64, in db: Database) throws -> Int {
        guard let (runID, batch, count) = try Self.decode(chunk: id, in: db) else { return 0 }
        try BatchWriter(runID: runID, rowTablePrefix: "temp.staged_").insertRows(of: batch, db)
        return count
    }

    /// The run, records and row count of chunk `id`, or `nil` when there is no such chunk.
    private static func decode(chunk id: Int64, in db: Database) throws -> (Int64, PendingRecords, Int)? {
        // Read through the C API: the blob is decoded where SQLite holds it, not copied into a Row first.
        let select = try db.cachedStatement(
            sql: "SELECT run_id, kind, row_count, data FROM main.staged_records WHERE id = ?"
        )
        let handle = select.sqliteStatement
        defer { sqlite3_reset(handle) }
        sqlite3_bind_int64(handle, 1, id)
        let code = sqlite3_step(handle)
        guard code == SQLITE_ROW else {
            if code == SQLITE_DONE { return nil }
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: db.lastErrorMessage)
        }
        let runID = sqlite3_column_int64(handle, 0)
        let kindName = sqlite3_column_text(handle, 1).map { String(cString: $0) } ?? ""
        let count = Int(sqlite3_column_int64(handle, 2))
        let data = sqlite3_column_blob(handle, 3)
        let bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : Int(sqlite3_column_bytes(handle, 3)))
        var batch = PendingRecords()
        switch RecordChunk.Kind(rawValue: kindName) {
        case .requests: batch.requests = try RecordChunk.decodeRequests(bytes, count: count)
        case .proxyRequests: batch.proxyRequests = try RecordChunk.decodeProxyRequests(bytes, count: count)
        case nil: throw RecordChunk.Malformed(description: "unknown kind \(kindName)")
        }
        return (runID, batch, count)
    }

    /// Rows inserted by one execution of the multi-row statement. Each execution of an INSERT costs
    /// SQLite a statement start, a cursor and a statement journal besides the row itself; 32 rows per
    /// execution spread that cost (with larger transactions, it took `bench/store.sh` from 0.98× to
    /// 1.38× of SQLite's C baseline).
    static let rowsPerStatement = 32

    /// Inserts `rows` into `table` with multi-row statements, then single-row ones for the remainder.
    /// `bind` binds one row's `columns` values at parameter `offset + 1` onwards.
    private func insert<Row>(
        _ rows: [Row],
        into table: String,
        columns: Int32,
        _ db: Database,
        bind: (RawStatement, Int32, Row) -> Void
    ) throws {
        let placeholders = "(" + Array(repeating: "?", count: Int(columns)).joined(separator: ", ") + ")"
        func statement(rows: Int) throws -> RawStatement {
            let values = Array(repeating: placeholders, count: rows).joined(separator: ", ")
            return RawStatement(try db.cachedStatement(sql: "INSERT INTO \(table) VALUES \(values)"), db)
        }
        let perStatement = Self.rowsPerStatement
        let wholeGroups = rows.count / perStatement
        var index = rows.startIndex
        if wholeGroups > 0 {
            let many = try statement(rows: perStatement)
            for _ in 0..<wholeGroups {
                for slot in 0..<Int32(perStatement) {
                    bind(many, slot * columns, rows[index])
                    index += 1
                }
                try many.step()
            }
        }
        if index < rows.endIndex {
            let one = try statement(rows: 1)
            while index < rows.endIndex {
                bind(one, 0, rows[index])
                try one.step()
                index += 1
            }
        }
    }
}

/// A GRDB prepared statement bound and stepped through the C API.
struct RawStatement {
    private let handle: SQLiteStatement
    private let connection: SQLiteConnection?

    init(_ statement: Statement, _ db: Database) {
        self.handle = statement.sqliteStatement
        self.connection = db.sqliteConnection
    }

    /// SQLite's `SQLITE_TRANSIENT`: copy the text before the call returns.
    private static var transient: sqlite3_destructor_type {
        unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
    }

    @inline(__always)
    func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(self.handle, index, value)
    }

    @inline(__always)
    func bind(_ index: Int32, _ value: Int64?) {
        if let value {
            sqlite3_bind_int64(self.handle, index, value)
        } else {
            sqlite3_bind_null(self.handle, index)
        }
    }

    @inline(__always)
    func bind(_ index: Int32, _ value: String?) {
        guard var value else {
            sqlite3_bind_null(self.handle, index)
            return
        }
        value.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                if let start = chars.baseAddress {
                    _ = sqlite3_bind_text(self.handle, index, start, Int32(chars.count), Self.transient)
                } else {
                    _ = sqlite3_bind_text(self.handle, index, "", 0, Self.transient)
                }
            }
        }
    }

    /// Binds `bytes` as a blob, copied before the call returns.
    @inline(__always)
    func bind(_ index: Int32, _ bytes: UnsafeRawBufferPointer) {
        _ = sqlite3_bind_blob64(
            self.handle,
            index,
            bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
            UInt64(bytes.count),
            Self.transient
        )
    }

    /// Executes the bound insert and resets the statement for the next row.
    func step() throws {
        let code = sqlite3_step(self.handle)
        guard code == SQLITE_DONE else {
            let message = self.connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            sqlite3_reset(self.handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message)
        }
        sqlite3_reset(self.handle)
    }
}
