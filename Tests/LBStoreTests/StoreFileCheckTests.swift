import Foundation
import GRDB
import LBCore
import Testing

@testable import LBStore

@Suite("Results store: files it must refuse, files it must upgrade")
struct StoreFileCheckTests {
    @Test("a text file is refused as not SQLite, and left as it was")
    func textFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("notes.db")
        let content = Data("these are my notes, not a database\n".utf8)
        try content.write(to: URL(fileURLWithPath: path))
        #expect(throws: StoreError.notSQLite(path: path)) { try ResultsDatabase.open(path: path) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == content)
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
    }

    @Test("a directory is refused as not SQLite")
    func directoryPath() throws {
        let directory = try TemporaryDirectory()
        #expect(throws: StoreError.notSQLite(path: directory.url.path)) { try ResultsDatabase.open(path: directory.url.path) }
    }

    @Test("another program's SQLite file is refused and left untouched")
    func foreignDatabase() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("other.sqlite")
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT)") }
        try queue.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(throws: StoreError.notResultsDatabase(path: path)) { try ResultsDatabase.open(path: path) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test("a file from a newer LBLab is refused, names the unknown schema, and keeps its data")
    func newerSchema() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("future.db")
        do {
            let database = try ResultsDatabase.open(path: path)
            let recorder = try database.beginRun(RunInfo(kind: .loadgen))
            recorder.record(sampleRequest(1))
            try recorder.finish(status: .completed, durationMicros: 1)
            try database.dbWriter.write { db in
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-future')")
            }
            try database.close()
        }
        #expect(throws: StoreError.newerSchema(path: path, unknownMigrations: ["v99-future"])) {
            try ResultsDatabase.open(path: path)
        }
        let queue = try DatabaseQueue(path: path)
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM requests") } == 1)
        let message = "\(StoreError.newerSchema(path: path, unknownMigrations: ["v99-future"]))"
        #expect(message.contains("newer LBLab") && message.contains(path))
    }

    @Test("an older file, with fewer migrations applied, is upgraded in place")
    func olderFileUpgrades() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("old.db")
        // An LBLab file from before any table existed: only the migrations table, empty.
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)") }
        try queue.close()
        let database = try ResultsDatabase.open(path: path)
        let applied = try database.read { db in try ResultsDatabase.migrator.appliedMigrations(db) }
        #expect(applied == ResultsDatabase.migrator.migrations)
        #expect(try database.runs().isEmpty)
    }

    @Test("an empty file is a new database")
    func emptyFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("empty.db")
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        let database = try ResultsDatabase.open(path: path)
        #expect(try database.runs().isEmpty)
    }
}
