import Foundation
import GRDB

/// The SQLite results store of one study (DESIGN §5): runs, their backends, every request, every
/// resource sample and every event.
///
/// One value per file, with one connection pool (GRDB's rule: connect to a file once). Opening checks
/// the file before touching it: a path that is not SQLite, a SQLite file of another program, or a file
/// from a newer LBLab is refused with a ``StoreError`` and left exactly as it was. An older LBLab file
/// is upgraded by the migrations.
public struct ResultsDatabase: Sendable {
    /// The file's path.
    public let path: String
    let dbWriter: any DatabaseWriter

    static let pageSize = 16_384
    static let autoCheckpointBytes = 256 << 20

    /// Opens the results file at `path`, creating it when it does not exist.
    public static func open(path: String) throws(StoreError) -> ResultsDatabase {
        let exists = try Self.checkIsSQLiteOrAbsent(path)
        if exists {
            try Self.checkSchemaReadOnly(path)
        }
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // WAL (set by DatabasePool) with synchronous=NORMAL: a commit does not wait for fsync, and a
            // crash loses at most the last transactions, never the file.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // A new file gets 16 KiB pages (a no-op for an existing one): fewer page splits and WAL frames
            // per row of the append-only request tables.
            try db.execute(sql: "PRAGMA page_size = \(Self.pageSize)")
            // Checkpoints copy every page a second time, from the WAL into the file. During a run that work
            // competes with the proxy and the load generator for the CPU, so it waits until the WAL holds
            // 256 MiB (a minute of requests at 100,000 per second) or the run ends: `RunRecorder.finish`
            // checkpoints and truncates the WAL.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Self.autoCheckpointBytes / Self.pageSize)")
        }
        // The proxy and the load generator of one experiment may write the same file from two
        // processes; each waits its turn instead of failing.
        configuration.busyMode = .timeout(10)
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
            // Records staged by a recorder that died before its run ended become rows now.
            try Self.recoverStagedRecords(pool, path: path)
            return ResultsDatabase(path: path, dbWriter: pool)
        } catch let error as StoreError {
            throw error
        } catch {
            throw .sqlite(path: path, message: "\(error)")
        }
    }

    /// Closes the file: checkpoints the WAL into it and releases every connection. Close a database that
    /// is done with before the same process opens its file again (as a harness that records a run and
    /// then reports on it does), so that the two connections never contend for the file. Using the value
    /// afterwards throws.
    public func close() throws(StoreError) {
        do {
            try self.dbWriter.close()
        } catch {
            throw .sqlite(path: self.path, message: "could not close: \(error)")
        }
    }

    /// Folds the WAL into the file and truncates it, unless readers are in the way (then the next
    /// checkpoint does it).
    func checkpoint() {
        _ = try? self.dbWriter.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
    }

    /// A database in memory, for tests.
    public static func inMemory() throws -> ResultsDatabase {
        let queue = try DatabaseQueue()
        try Self.migrator.migrate(queue)
        return ResultsDatabase(path: ":memory:", dbWriter: queue)
    }

    /// A file that exists must start with SQLite's header; an empty file is a new database. Returns
    /// whether there is a database to check further.
    private static func checkIsSQLiteOrAbsent(_ path: String) throws(StoreError) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return false }
        guard !isDirectory.boolValue, let handle = FileHandle(forReadingAtPath: path) else {
            throw .notSQLite(path: path)
        }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 16)) ?? Data()
        guard header.isEmpty || header == Data("SQLite format 3\0".utf8) else {
            throw .notSQLite(path: path)
        }
        return !header.isEmpty
    }

    /// Refuses files of other programs and of newer LBLab versions through a read-only connection, before
    /// anything (a migration, even the switch to WAL) writes to the file.
    private static func checkSchemaReadOnly(_ path: String) throws(StoreError) {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            try Self.checkSchema(queue, path: path)
        } catch let error as StoreError {
            throw error
        } catch {
            throw .sqlite(path: path, message: "\(error)")
        }
    }

    private static func checkSchema(_ reader: some DatabaseReader, path: String) throws {
        try reader.read { db in
            let tables = try String.fetchAll(
                db,
                sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            if !tables.isEmpty && !tables.contains("grdb_migrations") {
                throw StoreError.notResultsDatabase(path: path)
            }
            if try Self.migrator.hasBeenSuperseded(db) {
                let known = Set(Self.migrator.migrations)
                let applied = try Self.migrator.appliedIdentifiers(db)
                throw StoreError.newerSchema(path: path, unknownMigrations: applied.filter { !known.contains($0) }.sorted())
            }
        }
    }

    /// Starts a run: writes its `runs` row with status `running` and returns the recorder that takes
    /// its records. Call ``RunRecorder/finish(status:durationMicros:)`` when the run ends.
    public func beginRun(_ info: RunInfo, bufferCapacity: Int = RunRecorder.defaultBufferCapacity) throws(StoreError)
        -> RunRecorder
    {
        let uuid = UUID().uuidString.lowercased()
        let runID: Int64
        do {
            runID = try self.dbWriter.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO runs (uuid, kind, scenario, algorithm, repeat, seed, params_json, started_at, status,
                            config_yaml, config_sha256, git_commit, git_modified, host, lblab_version)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        uuid, info.kind.rawValue, info.scenario, info.algorithm, info.repeat,
                        info.seed.map { Int64(bitPattern: $0) }, info.paramsJSON,
                        RunInfo.timestamp(info.startedAt), info.configYAML, info.configSHA256, info.gitCommit,
                        info.gitModified, info.host, info.lblabVersion,
                    ]
                )
                return db.lastInsertedRowID
            }
        } catch {
            throw .sqlite(path: self.path, message: "\(error)")
        }
        return RunRecorder(database: self, runID: runID, uuid: uuid, bufferCapacity: bufferCapacity)
    }

    /// Records into run `id`, which another process began and finishes (`lbctl proxy --run-id` under
    /// `lbctl run`): the recorder's ``RunRecorder/finish(status:durationMicros:)`` writes what is
    /// buffered and adds its dropped records, but leaves the run's status to its owner.
    public func attachRun(id: Int64, bufferCapacity: Int = RunRecorder.defaultBufferCapacity) throws(StoreError) -> RunRecorder {
        let uuid = try self.read { db in try String.fetchOne(db, sql: "SELECT uuid FROM runs WHERE id = ?", arguments: [id]) }
        guard let uuid else { throw .noSuchRun(path: self.path, run: id) }
        return RunRecorder(database: self, runID: id, uuid: uuid, bufferCapacity: bufferCapacity, ownsRun: false)
    }

    /// The ids of run `runID`'s backends by name.
    public func backendIDs(runID: Int64) throws(StoreError) -> [String: Int] {
        try self.read { db in
            var ids: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, name FROM backends WHERE run_id = ?", arguments: [runID]) {
                ids[row["name"]] = row["id"]
            }
            return ids
        }
    }

    /// Every run in the file, oldest first.
    public func runs() throws(StoreError) -> [RunSummary] {
        try self.read { db in
            try Row.fetchAll(db, sql: Self.runSummarySQL + " ORDER BY r.id").map(RunSummary.init(row:))
        }
    }

    /// The run with id `id`, if there is one (counting only its own requests).
    public func run(id: Int64) throws(StoreError) -> RunSummary? {
        try self.read { db in
            try Row.fetchOne(db, sql: Self.runSummarySQL + " WHERE r.id = ?", arguments: [id]).map(RunSummary.init(row:))
        }
    }

    /// A `runs` row with its count of request rows, and of request records still staged. `requests` has
    /// no index (see the schema), so each run counted is a scan: count only the runs asked for.
    private static let runSummarySQL = """
        SELECT r.id, r.uuid, r.kind, r.scenario, r.algorithm, r.repeat, r.seed, r.params_json, r.status, r.started_at,
            r.duration_us, r.dropped_records,
            (SELECT count(*) FROM requests q WHERE q.run_id = r.id) AS request_count,
            (SELECT coalesce(sum(s.row_count), 0) FROM staged_records s WHERE s.run_id = r.id AND s.kind = 'requests')
                AS staged_request_count,
            (SELECT t.requests FROM totals t WHERE t.run_id = r.id AND t.backend_id IS NULL) AS counted_requests
        FROM runs r
        """

    /// Runs `body` on a read connection, turning SQLite failures into ``StoreError``.
    func read<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try self.dbWriter.read(body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw .sqlite(path: self.path, message: "\(error)")
        }
    }
}
