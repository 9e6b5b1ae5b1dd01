import Foundation
import GRDB
import LBBuildStamp
import LBCore
import Testing

@testable import LBStore

@Suite("Results store")
struct ResultsDatabaseTests {
    @Test("every kind of record goes in and comes back as it was")
    func roundTrip() throws {
        let directory = try TemporaryDirectory()
        let database = try ResultsDatabase.open(path: directory.path("lblab.db"))
        var info = RunInfo(kind: .loadgen, startedAt: Date(timeIntervalSince1970: 1_800_000_000.25))
        info.algorithm = "round-robin"
        info.seed = UInt64.max
        info.configYAML = "clients: 50\n"
        let recorder = try database.beginRun(info)
        let requests = (0..<1_000).map(sampleRequest)
        requests.forEach(recorder.record)
        let proxyRequest = ProxyRequestRecord(
            requestID: 7, receivedMicros: 10, pickedMicros: 11, backendID: 2, upstreamStartMicros: 12,
            upstreamDoneMicros: 90, status: 502, attempts: 2, retriedFrom: 1, clientIP: "203.0.113.8"
        )
        recorder.record(proxyRequest)
        recorder.record(ResourceSample(tMicros: 250_000, source: "b1", cpuUsageMicros: 1_200, rssBytes: 9_000_000, openFDs: 12))
        recorder.record(RunEvent(tMicros: 5_000_000, kind: "kill", subject: "b2", detailJSON: #"{"signal":"KILL"}"#))
        recorder.record(BackendRecord(id: 2, name: "b2", address: "127.0.0.1:9002", weight: 3))

        let outcome = try recorder.finish(status: .completed, durationMicros: 20_000_000)
        #expect(outcome == .init(status: .completed, written: 1_004, dropped: 0))

        let stored = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM requests WHERE run_id = ? ORDER BY id", arguments: [recorder.runID])
        }
        #expect(stored.count == 1_000)
        for (row, request) in zip(stored, requests) {
            let back = RequestRecord(
                id: row["id"], clientID: row["client_id"], clientIP: row["client_ip"],
                intendedMicros: row["intended_us"], sentMicros: row["sent_us"], firstByteMicros: row["first_byte_us"],
                doneMicros: row["done_us"], status: row["status"], backendID: row["backend_id"],
                attempts: row["attempts"], bytesIn: row["bytes_in"], bytesOut: row["bytes_out"],
                error: (row["error"] as String?).flatMap(RequestFailure.init(rawValue:))
            )
            #expect(back == request)
        }
        let (proxy, sample, event, backend, run) = try database.read { db in
            (
                try Row.fetchOne(db, sql: "SELECT * FROM proxy_requests")!,
                try Row.fetchOne(db, sql: "SELECT * FROM samples")!,
                try Row.fetchOne(db, sql: "SELECT * FROM events")!,
                try Row.fetchOne(db, sql: "SELECT * FROM backends")!,
                try Row.fetchOne(db, sql: "SELECT * FROM runs")!
            )
        }
        #expect(proxy["request_id"] == 7)
        #expect(proxy["status"] == 502)
        #expect(proxy["retried_from"] == 1)
        #expect(proxy["client_ip"] == "203.0.113.8")
        #expect(proxy["upstream_done_us"] == 90)
        #expect(sample["source"] == "b1")
        #expect(sample["rss_bytes"] == 9_000_000)
        #expect((sample["cpu_throttled_us"] as Int64?) == nil)
        #expect(event["kind"] == "kill")
        #expect(event["detail_json"] == #"{"signal":"KILL"}"#)
        #expect(backend["name"] == "b2")
        #expect(backend["weight"] == 3.0)
        #expect(backend["address"] == "127.0.0.1:9002")
        #expect(run["status"] == "completed")
        #expect(run["duration_us"] == 20_000_000)
        #expect(run["kind"] == "loadgen")
        #expect(run["started_at"] == "2027-01-15T08:00:00.250Z")
        #expect(UInt64(bitPattern: run["seed"] as Int64) == UInt64.max)
        // Which code made the run: the commit this binary was built from, and whether its tree was modified.
        #expect(BuildStamp.commit?.count == 40 && BuildStamp.treeModified != nil)
        #expect(run["git_commit"] == BuildStamp.commit && run["git_modified"] == BuildStamp.treeModified)
        #expect(try database.runs().map(\.requestCount) == [1_000])
    }

    @Test("an interrupted run keeps every record taken before finish, and says it was interrupted")
    func interruptedFlush() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("interrupted.db")
        let database = try ResultsDatabase.open(path: path)
        let recorder = try database.beginRun(RunInfo(kind: .real))
        for i in 0..<200_000 { recorder.record(sampleRequest(i)) }
        // finish comes while most of them are still in the buffer.
        let outcome = try recorder.finish(status: .interrupted, durationMicros: 1_234)
        #expect(outcome.written == 200_000 && outcome.dropped == 0)
        // A second finish (a second Ctrl-C) changes nothing.
        #expect(try recorder.finish(status: .completed, durationMicros: 9) == outcome)
        try database.close()
        // Opening the file again sees it all.
        let reopened = try ResultsDatabase.open(path: path)
        let summary = try #require(try reopened.runs().first)
        #expect(summary.status == .interrupted && summary.requestCount == 200_000 && summary.durationMicros == 1_234)
    }

    @Test("a full buffer drops records and counts every one of them in runs.dropped_records")
    func boundedBuffer() throws {
        let database = try ResultsDatabase.inMemory()
        let recorder = try database.beginRun(RunInfo(kind: .loadgen), bufferCapacity: 16)
        let total = 100_000
        for i in 0..<total { recorder.record(sampleRequest(i)) }
        let outcome = try recorder.finish(status: .completed, durationMicros: nil)
        #expect(outcome.dropped > 0, "a 16-record buffer cannot take 100,000 records in a tight loop")
        #expect(outcome.written + outcome.dropped == total)
        let (rows, dropped) = try database.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM requests")!,
                try Int.fetchOne(db, sql: "SELECT dropped_records FROM runs")!
            )
        }
        #expect(rows == outcome.written && dropped == outcome.dropped)
    }

    @Test("a chunk of records is taken as far as the buffer has room, and the rest is counted as dropped")
    func chunkOverflow() throws {
        let database = try ResultsDatabase.inMemory()
        let recorder = try database.beginRun(RunInfo(kind: .loadgen), bufferCapacity: 16)
        recorder.record(contentsOf: (0..<40).map(sampleRequest))
        let outcome = try recorder.finish(status: .completed, durationMicros: nil)
        #expect(outcome.written == 16 && outcome.dropped == 24)
        let ids = try database.read { db in try Int.fetchAll(db, sql: "SELECT id FROM requests ORDER BY id") }
        #expect(ids == Array(0..<16), "the first records of the chunk are the ones kept")
    }

    @Test("a new file has 16 KiB pages, and finishing a run folds the WAL into the file")
    func finishCheckpoints() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("checkpoint.db")
        let database = try ResultsDatabase.open(path: path)
        let recorder = try database.beginRun(RunInfo(kind: .loadgen))
        recorder.record(contentsOf: (0..<50_000).map(sampleRequest))
        let before = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        try recorder.finish(status: .completed, durationMicros: 1)
        let walSize = try #require(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
        let after = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(walSize == 0, "the WAL is truncated once its frames are in the file")
        #expect(after > before + 50_000 * 20, "the rows are in the file itself (\(before) -> \(after) bytes)")
        #expect(try database.read { db in try Int.fetchOne(db, sql: "PRAGMA page_size") } == 16_384)
        try database.close()
        #expect(throws: StoreError.self) { try database.runs() }
    }

    @Test("producers on several threads lose nothing")
    func concurrentProducers() async throws {
        let database = try ResultsDatabase.inMemory()
        let recorder = try database.beginRun(RunInfo(kind: .real))
        await withTaskGroup(of: Void.self) { group in
            for producer in 0..<4 {
                group.addTask {
                    for i in 0..<25_000 {
                        if producer % 2 == 0 {
                            recorder.record(sampleRequest(producer * 25_000 + i))
                        } else if i % 100 == 0 {
                            // The odd producers hand over chunks, as the load generator's workers do.
                            recorder.record(contentsOf: (i..<i + 100).map { sampleRequest(producer * 25_000 + $0) })
                        }
                        if i % 1_000 == 0 {
                            recorder.record(ResourceSample(tMicros: Int64(i), source: "p\(producer)"))
                        }
                    }
                }
            }
        }
        let outcome = try recorder.finish(status: .completed, durationMicros: 1)
        #expect(outcome.written == 100_000 + 100 && outcome.dropped == 0)
        let distinct = try database.read { db in try Int.fetchOne(db, sql: "SELECT count(DISTINCT id) FROM requests")! }
        #expect(distinct == 100_000)
    }

    @Test("runs of one file are kept apart")
    func severalRuns() throws {
        let database = try ResultsDatabase.inMemory()
        for algorithm in ["round-robin", "least-connections"] {
            var info = RunInfo(kind: .real)
            info.algorithm = algorithm
            let recorder = try database.beginRun(info)
            for i in 0..<(algorithm == "round-robin" ? 10 : 20) { recorder.record(sampleRequest(i)) }
            try recorder.finish(status: .completed, durationMicros: 5)
        }
        let runs = try database.runs()
        #expect(runs.map(\.algorithm) == ["round-robin", "least-connections"])
        #expect(runs.map(\.requestCount) == [10, 20])
        #expect(Set(runs.map(\.uuid)).count == 2)
    }
}
