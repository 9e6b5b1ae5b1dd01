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

    func write(_ batch: PendingRecords, to db: Database) throws {
        if !batch.backends.isEmpty {
            let statement = try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO backends (run_id, id, name, address, weight, spec_json) VALUES (?, ?, ?, ?, ?, ?)"
            )
            for backend in batch.backends {
                try statement.execute(arguments: [
                    self.runID, backend.id, backend.name, backend.address, backend.weight, backend.specJSON,
                ])
            }
        }
        if !batch.requests.isEmpty {
            let statement = RawStatement(
                try db.cachedStatement(sql: "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                db
            )
            for request in batch.requests {
                statement.bind(1, self.runID)
                statement.bind(2, request.id)
                statement.bind(3, Int64(request.clientID))
                statement.bind(4, request.clientIP)
                statement.bind(5, request.intendedMicros)
                statement.bind(6, request.sentMicros)
                statement.bind(7, request.firstByteMicros)
                statement.bind(8, request.doneMicros)
                statement.bind(9, request.status.map(Int64.init))
                statement.bind(10, request.backendID.map(Int64.init))
                statement.bind(11, Int64(request.attempts))
                statement.bind(12, request.bytesIn)
                statement.bind(13, request.bytesOut)
                statement.bind(14, request.error?.rawValue)
                try statement.step()
            }
        }
        if !batch.proxyRequests.isEmpty {
            let statement = RawStatement(
                try db.cachedStatement(sql: "INSERT INTO proxy_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                db
            )
            for request in batch.proxyRequests {
                statement.bind(1, self.runID)
                statement.bind(2, request.requestID)
                statement.bind(3, request.receivedMicros)
                statement.bind(4, request.pickedMicros)
                statement.bind(5, request.backendID.map(Int64.init))
                statement.bind(6, request.upstreamStartMicros)
                statement.bind(7, request.upstreamDoneMicros)
                statement.bind(8, request.status.map(Int64.init))
                statement.bind(9, Int64(request.attempts))
                statement.bind(10, request.retriedFrom.map(Int64.init))
                statement.bind(11, request.clientIP)
                try statement.step()
            }
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
                try statement.execute(arguments: [self.runID, event.tMicros, event.kind, event.subject, event.detailJSON])
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
