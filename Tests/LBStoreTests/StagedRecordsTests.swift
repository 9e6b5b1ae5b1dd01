import Foundation
import GRDB
import LBCore
import Testing

@testable import LBStore

@Suite("Staged records")
struct StagedRecordsTests {
    @Test("a chunk gives back every request record as it was, optional fields present or not")
    func requestChunkRoundTrip() throws {
        var records = (0..<1_000).map(sampleRequest)
        records[3].key = 41
        records[4].key = Int.max
        records[5].clientIP = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
        records[6].clientIP = ""
        records[7].error = .connectionClosed
        records[8].id = Int64.min
        records[8].bytesIn = Int64.max
        let bytes = RecordChunk.encode(records)
        let back = try bytes.withUnsafeBytes { try RecordChunk.decodeRequests($0, count: records.count) }
        #expect(back == records)
    }

    @Test("a chunk gives back every proxy record as it was, optional fields present or not")
    func proxyChunkRoundTrip() throws {
        let records = (0..<256).map { i in
            ProxyRequestRecord(
                requestID: Int64(i),
                receivedMicros: Int64(i) * 7,
                pickedMicros: i & 1 != 0 ? Int64(i) * 7 + 1 : nil,
                backendID: i & 2 != 0 ? i % 5 : nil,
                upstreamStartMicros: i & 4 != 0 ? Int64(i) * 7 + 2 : nil,
                upstreamDoneMicros: i & 8 != 0 ? Int64(i) * 7 + 90 : nil,
                status: i & 16 != 0 ? 200 + i : nil,
                attempts: 1 + i % 3,
                retriedFrom: i & 32 != 0 ? i % 4 : nil,
                clientIP: i & 64 != 0 ? "198.51.100.\(i % 250)" : nil
            )
        }
        let bytes = RecordChunk.encode(records)
        let back = try bytes.withUnsafeBytes { try RecordChunk.decodeProxyRequests($0, count: records.count) }
        #expect(back == records)
    }

    @Test("a chunk cut short, with bytes to spare, with a count it cannot hold, or of an unknown format is refused")
    func malformedChunks() throws {
        let bytes = RecordChunk.encode((0..<10).map(sampleRequest))
        #expect(throws: RecordChunk.Malformed.self) {
            try bytes.dropLast(3).withUnsafeBytes { try RecordChunk.decodeRequests($0, count: 10) }
        }
        #expect(throws: RecordChunk.Malformed.self) {
            try bytes.withUnsafeBytes { try RecordChunk.decodeRequests($0, count: 9) }
        }
        #expect(throws: RecordChunk.Malformed.self) {
            try bytes.withUnsafeBytes { try RecordChunk.decodeRequests($0, count: -1) }
        }
        #expect(throws: RecordChunk.Malformed.self) {
            try bytes.withUnsafeBytes { try RecordChunk.decodeProxyRequests($0, count: Int(Int32.max)) }
        }
        var newer = bytes
        newer[0] = RecordChunk.format + 1
        #expect(throws: RecordChunk.Malformed.self) {
            try newer.withUnsafeBytes { try RecordChunk.decodeRequests($0, count: 10) }
        }
    }

    @Test(
        "while a run records, its requests wait as chunks; when it ends they are rows, in order, and no chunk is left"
    )
    func stagedDuringRun() throws {
        let directory = try TemporaryDirectory()
        let database = try ResultsDatabase.open(path: directory.path("staged.db"))
        let recorder = try database.beginRun(RunInfo(kind: .loadgen))
        let total = 3 * RunRecorder.batchRecords
        for i in 0..<total { recorder.record(sampleRequest(i)) }
        recorder.record(
            ProxyRequestRecord(
                requestID: 1,
                receivedMicros: 5,
                pickedMicros: 6,
                backendID: 0,
                upstreamStartMicros: 7,
                upstreamDoneMicros: 8,
                status: 200,
                attempts: 1,
                retriedFrom: nil,
                clientIP: "203.0.113.1"
            )
        )
        let staged = try Self.waitUntilStaged(database, atLeast: 2 * RunRecorder.batchRecords)
        #expect(staged >= 2 * RunRecorder.batchRecords, "full batches are staged while the run goes on")
        #expect(try database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM requests")! } == 0)
        let live = try #require(try database.runs().first)
        #expect(
            live.requestCount == 0 && live.stagedRequestCount >= Int64(staged),
            "lbctl runs shows a live run's progress"
        )

        let outcome = try recorder.finish(status: .completed, durationMicros: 1)
        #expect(outcome.written == total + 1 && outcome.dropped == 0)
        let (ids, chunks, proxyRows) = try database.read { db in
            (
                try Int64.fetchAll(db, sql: "SELECT id FROM requests ORDER BY rowid"),
                try Int.fetchOne(db, sql: "SELECT count(*) FROM staged_records")!,
                try Int.fetchOne(db, sql: "SELECT count(*) FROM proxy_requests")!
            )
        }
        #expect(ids == (0..<Int64(total)).map { $0 }, "every record once, in the order taken")
        #expect(chunks == 0 && proxyRows == 1)
        let done = try #require(try database.runs().first)
        #expect(done.requestCount == Int64(total) && done.stagedRequestCount == 0)
    }

    /// The request records staged in `database`, once there are `count` or more; at most 20 s later
    /// (the writer stages each full batch as it comes).
    static func waitUntilStaged(_ database: ResultsDatabase, atLeast count: Int) throws -> Int {
        let deadline = ContinuousClock.now + .seconds(20)
        var staged = 0
        repeat {
            staged = try database.read { db in
                try Int.fetchOne(
                    db,
                    sql: "SELECT coalesce(sum(row_count), 0) FROM staged_records WHERE kind = 'requests'"
                )!
            }
            if staged >= count { break }
            Thread.sleep(forTimeInterval: 0.02)
        } while ContinuousClock.now < deadline
        return staged
    }

    @Test("a report and an export of a run still recording count its staged records, and leave the file as it was")
    func liveRunReportedAndExported() throws {
        let directory = try TemporaryDirectory()
        let database = try ResultsDatabase.open(path: directory.path("live.db"))
        let recorder = try database.beginRun(RunInfo(kind: .loadgen))
        // Two chunks: a batch is staged when full or when its oldest record is due (within 250 ms).
        let total = 2_000
        for i in 0..<total / 2 { recorder.record(sampleRequest(i)) }
        try #require(try Self.waitUntilStaged(database, atLeast: total / 2) == total / 2)
        for i in total / 2..<total { recorder.record(sampleRequest(i)) }
        try #require(try Self.waitUntilStaged(database, atLeast: total) == total)
        let id = try #require(try database.runs().first?.id)
        let chunksBefore = try database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM staged_records")! }

        for _ in 0..<2 {  // the connection's temporary tables are gone after each read
            let report = try database.report(runID: id)
            #expect(report.requests == total && report.responses == total - total / 10, "\(report.requests) \(report.responses)")
        }
        let files = try database.exportCSV(to: directory.path("csv"), runID: id)
        #expect(files.first { $0.path.hasSuffix("/requests.csv") }?.rows == total)
        let lines = try String(contentsOfFile: directory.path("csv/requests.csv"), encoding: .utf8).split(separator: "\r\n")
        #expect(lines.count == total + 1 && lines[1].hasPrefix("\(id),0,") && lines[total].hasPrefix("\(id),\(total - 1),"), "in order")
        let (rows, chunks) = try database.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM requests")!, try Int.fetchOne(db, sql: "SELECT count(*) FROM staged_records")!)
        }
        #expect(rows == 0 && chunks == chunksBefore && chunks >= 2, "reading wrote nothing")

        _ = try recorder.finish(status: .completed, durationMicros: 1)
        #expect(try database.report(runID: id).requests == total, "counted once after the run ends")
    }

    /// A writer that is gone: pid_max is at most 2^22 on Linux, so no process has this pid.
    static let deadWriter = StagingProcess(host: StagingProcess.current.host, pid: 2_000_000_000, startTicks: 12_345)

    /// A new file at `path` with one run, begun and finished, that chunks can be staged into.
    static func endedRun(at path: String) throws -> (database: ResultsDatabase, recorder: RunRecorder) {
        let database = try ResultsDatabase.open(path: path)
        let recorder = try database.beginRun(RunInfo(kind: .loadgen))
        try recorder.finish(status: .completed, durationMicros: 1)
        return (database, recorder)
    }

    /// Stages a chunk of one request in a format this LBLab cannot read (a newer one's).
    static func stageUnreadableChunk(_ db: Database, runID: Int64, writer: StagingProcess) throws {
        try db.execute(
            sql: "INSERT INTO staged_records (run_id, kind, row_count, writer, data) VALUES (?, 'requests', 1, ?, ?)",
            arguments: [runID, writer.name, Data([RecordChunk.format + 1, 0, 0])]
        )
    }

    @Test("opening a file turns the chunks of a recorder that died into rows, and leaves those of live ones")
    func recoveryAtOpen() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("crashed.db")
        let (database, recorder) = try Self.endedRun(at: path)
        let here = StagingProcess.current
        let dead = Self.deadWriter
        let elsewhere = StagingProcess(host: here.host + "-other", pid: 1, startTicks: 1)
        let writer = BatchWriter(runID: recorder.runID)
        func batch(_ ids: Range<Int>) -> PendingRecords {
            var batch = PendingRecords()
            batch.requests = ids.map(sampleRequest)
            return batch
        }
        try database.dbWriter.write { db in
            try writer.write(batch(0..<100), to: db, stagingAs: dead.name)
            try writer.write(batch(100..<150), to: db, stagingAs: here.name)
            try writer.write(batch(150..<160), to: db, stagingAs: elsewhere.name)
            try writer.write(batch(160..<200), to: db, stagingAs: dead.name)
            // A chunk this LBLab cannot read stays staged, and the file still opens.
            try Self.stageUnreadableChunk(db, runID: recorder.runID, writer: dead)
        }
        try database.close()

        let reopened = try ResultsDatabase.open(path: path)
        let (ids, left) = try reopened.read { db in
            (
                try Int.fetchAll(db, sql: "SELECT id FROM requests ORDER BY rowid"),
                try String.fetchAll(db, sql: "SELECT writer FROM staged_records ORDER BY id")
            )
        }
        #expect(ids == Array(0..<100) + Array(160..<200))
        #expect(left == [here.name, elsewhere.name, dead.name])
        let summary = try #require(try reopened.runs().first)
        #expect(summary.requestCount == 140)
        #expect(
            summary.stagedRequestCount == 50 + 10 + 1,
            "the live writer's, the other host's and the unreadable chunk"
        )
        // A report and an export count the chunks still staged, and leave out the one they cannot read.
        #expect(try reopened.report(runID: recorder.runID).requests == 140 + 50 + 10)
        let files = try reopened.exportCSV(to: directory.path("csv"))
        #expect(files.first { $0.path.hasSuffix("/requests.csv") }?.rows == 140 + 50 + 10)
    }

    @Test("chunks become rows a group to a transaction, in order; an unreadable one stays, alone")
    func groupedUnstaging() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("groups.db")
        let (database, recorder) = try Self.endedRun(at: path)
        let writer = BatchWriter(runID: recorder.runID)
        // Three groups and a half, the unreadable chunk in the middle of the second.
        let chunks = 3 * ResultsDatabase.unstageGroup + ResultsDatabase.unstageGroup / 2
        let unreadable = ResultsDatabase.unstageGroup + 3
        try database.dbWriter.write { db in
            for chunk in 0..<chunks {
                if chunk == unreadable {
                    try Self.stageUnreadableChunk(db, runID: recorder.runID, writer: Self.deadWriter)
                } else {
                    var batch = PendingRecords()
                    batch.requests = (chunk * 10..<chunk * 10 + 10).map(sampleRequest)
                    try writer.write(batch, to: db, stagingAs: Self.deadWriter.name)
                }
            }
        }
        try database.close()

        let reopened = try ResultsDatabase.open(path: path)
        let (ids, left) = try reopened.read { db in
            (
                try Int.fetchAll(db, sql: "SELECT id FROM requests ORDER BY rowid"),
                try Int.fetchAll(db, sql: "SELECT row_count FROM staged_records")
            )
        }
        #expect(ids == (0..<chunks * 10).filter { $0 / 10 != unreadable })
        #expect(left == [1], "only the unreadable chunk stays")
    }

    @Test("the run's owner, as it finishes, turns into rows the chunks that a killed process left in its run")
    func recoveryAtFinish() throws {
        let database = try ResultsDatabase.inMemory()
        let recorder = try database.beginRun(RunInfo(kind: .real))
        let dead = StagingProcess(host: StagingProcess.current.host, pid: 2_000_000_000, startTicks: 1)
        var batch = PendingRecords()
        batch.proxyRequests = (0..<300).map { i in
            ProxyRequestRecord(
                requestID: Int64(i),
                receivedMicros: Int64(i),
                pickedMicros: nil,
                backendID: 1,
                upstreamStartMicros: nil,
                upstreamDoneMicros: nil,
                status: 200,
                attempts: 1,
                retriedFrom: nil,
                clientIP: nil
            )
        }
        _ = try database.dbWriter.write { db in
            try BatchWriter(runID: recorder.runID).write(batch, to: db, stagingAs: dead.name)
        }
        recorder.record(sampleRequest(0))
        try recorder.finish(status: .completed, durationMicros: 1)
        let (proxyRows, chunks) = try database.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM proxy_requests")!,
                try Int.fetchOne(db, sql: "SELECT count(*) FROM staged_records")!
            )
        }
        #expect(proxyRows == 300 && chunks == 0)
    }

    @Test("a process is known to have ended only on this host, when its pid is free or taken by a later process")
    func processLiveness() {
        let here = StagingProcess.current
        #expect(!here.hasEnded)
        #expect(StagingProcess(name: here.name) == here)
        #expect(StagingProcess(host: here.host, pid: 2_000_000_000, startTicks: 1).hasEnded)
        #expect(!StagingProcess(host: here.host + "-other", pid: 2_000_000_000, startTicks: 1).hasEnded)
        #if os(Linux)
        #expect(here.startTicks > 0)
        #expect(
            StagingProcess(host: here.host, pid: here.pid, startTicks: here.startTicks + 1).hasEnded,
            "a reused pid"
        )
        #endif
        #expect(StagingProcess(name: "no pid here") == nil)
    }
}
