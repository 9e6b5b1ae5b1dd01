import Foundation
import GRDB
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `lbctl run` end to end: the shipped scenarios (shortened where the issue allows), what they record,
/// the CSV export, an interrupted run, and that nothing is left running or mounted afterwards.
@Suite("lbctl run", .serialized)
struct ScenarioRunTests {
    static func scenario(_ name: String) -> String {
        repositoryRoot.appendingPathComponent("scenarios/\(name).yml").path
    }

    @Test("quickstart, shortened: three completed runs, every request recorded from both sides, samples, phases, CSV")
    func quickstart() async throws {
        let scratch = try ScratchDirectory()
        let database = scratch.path("lblab.db")
        let run = try ChildProcess("lbctl", ["run", "--scenario", Self.scenario("quickstart"), "--duration", "4s", "--db", database, "--out", scratch.path("out")])
        let result = await run.wait(timeout: .seconds(120))
        // Latency comparisons hold on a quiet machine; on a virtual machine whose host steals CPU time
        // they may not, and the run then says so (a warning naming the run). Errors and shares hold anyway.
        let noisy = result.stdout.contains("(steal)")
        #expect(result.status == 0 || (result.status == 1 && noisy), "\(result.stderr)\n\(result.stdout)")
        for expectation in ["errors(round-robin) == 0", "errors(least-connections) == 0", "errors(power-of-two) == 0", "imbalance(round-robin) < 1.05"] {
            #expect(result.stdout.contains("PASS  \(expectation)"), "\(result.stdout)")
        }
        if !noisy { #expect(!result.stdout.contains("FAIL"), "\(result.stdout)") }
        try Self.expectNothingLeft(harness: run.pid, database: database)

        let queue = try DatabaseQueue(path: database)
        try await queue.read { db in
            let runs = try Row.fetchAll(db, sql: "SELECT id, algorithm, status, config_sha256, seed FROM runs ORDER BY id")
            #expect(runs.map { $0["algorithm"] as String } == ["round-robin", "least-connections", "power-of-two"])
            #expect(runs.allSatisfy { ($0["status"] as String) == "completed" && ($0["config_sha256"] as String).count == 64 })
            for row in runs {
                let id: Int64 = row["id"]
                // 1,000 req/s Poisson for 4 s: 4,000 expected, and a Poisson count stays within 5 sigma (±316).
                let requests = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE run_id = ?", arguments: [id]) ?? 0
                #expect(abs(requests - 4_000) < 316, "run \(id): \(requests) requests")
                let failed = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE run_id = ? AND (error IS NOT NULL OR status <> 200)", arguments: [id])
                #expect(failed == 0)
                // Every client-side row has its proxy-side row, joined on the request id.
                let joined = try Int.fetchOne(
                    db,
                    sql: "SELECT count(*) FROM requests q JOIN proxy_requests p ON p.run_id = q.run_id AND p.request_id = q.id WHERE q.run_id = ? AND p.backend_id = q.backend_id",
                    arguments: [id]
                )
                #expect(joined == requests, "run \(id)")
                let ips = try Int.fetchOne(db, sql: "SELECT count(DISTINCT client_ip) FROM requests WHERE run_id = ? AND client_ip LIKE '203.0.113.%'", arguments: [id])
                #expect(ips == 50)
                // A sample every 250 ms of each backend, the proxy and the load generator over a ~5 s run.
                let samples = try Row.fetchAll(db, sql: "SELECT source, count(*) AS n, max(cpu_usage_us) - min(cpu_usage_us) AS cpu, max(rss_bytes) AS rss FROM samples WHERE run_id = ? GROUP BY source", arguments: [id])
                #expect(Set(samples.map { $0["source"] as String }) == ["b1", "b2", "b3", "proxy", "loadgen", "host"])
                for sample in samples where (sample["source"] as String) != "host" {
                    #expect((sample["n"] as Int) >= 14, "\(sample)")
                    #expect((sample["cpu"] as Int64) > 0 && (sample["rss"] as Int64) > 1 << 20, "\(sample)")
                }
                let phases = try String.fetchAll(db, sql: "SELECT subject FROM events WHERE run_id = ? AND kind = 'phase' ORDER BY t_us", arguments: [id])
                #expect(phases == ["setup", "load", "measure", "drain", "stop"])
                let backends = try Row.fetchAll(db, sql: "SELECT id, name, json_extract(spec_json, '$.cpu_limit') AS cpu FROM backends WHERE run_id = ? ORDER BY id", arguments: [id])
                #expect(backends.map { $0["name"] as String } == ["b1", "b2", "b3"])
                #expect(backends.allSatisfy { ($0["cpu"] as Double?) == 0.5 })
            }
        }

        let export = try ChildProcess("lbctl", ["export", "--format", "csv", "--out", scratch.path("csv"), "--run", "2", "--db", database])
        let exported = await export.wait(timeout: .seconds(30))
        #expect(exported.status == 0, "\(exported.stderr)")
        let requests = try String(contentsOfFile: scratch.path("csv/requests.csv"), encoding: .utf8)
        let lines = requests.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        #expect(lines.first == "run_id,id,client_id,client_ip,intended_us,sent_us,first_byte_us,done_us,status,backend_id,attempts,bytes_in,bytes_out,error,key")
        let rows = try await queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE run_id = 2") ?? 0 }
        #expect(lines.count == rows + 1 && lines.dropFirst().allSatisfy { $0.hasPrefix("2,") })
        let runsCSV = try String(contentsOfFile: scratch.path("csv/runs.csv"), encoding: .utf8)
        // The scenario's text has commas and line breaks: quoted, quotes doubled, still one record.
        #expect(runsCSV.components(separatedBy: "\r\n").filter { !$0.isEmpty }.count == 2)
        #expect(runsCSV.contains("\"# Quickstart: three equal backends, 1,000 requests per second"))
        for table in ["backends", "proxy_requests", "samples", "events"] {
            #expect(FileManager.default.fileExists(atPath: scratch.path("csv/\(table).csv")))
        }

        // The analysis script reads the same file to the same figures (nearest-rank percentiles).
        let python = try ChildProcess(
            executableURL: URL(fileURLWithPath: "/usr/bin/env"),
            ["python3", repositoryRoot.appendingPathComponent("analysis/report.py").path, database, "--out", scratch.path("analysis")]
        )
        let analysed = await python.wait(timeout: .seconds(120))
        #expect(analysed.status == 0, "\(analysed.stderr)")
        for file in ["summary.csv", "latency_cdf.png", "shares_run1.png", "cpu_run3.png"] {
            #expect(FileManager.default.fileExists(atPath: scratch.path("analysis/\(file)")), "\(file)")
        }
        let summary = try String(contentsOfFile: scratch.path("analysis/summary.csv"), encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let columns = summary.first.map { $0.map(String.init) } ?? []
        let p99Column = try #require(columns.firstIndex(of: "p99_ms"))
        let requestsColumn = try #require(columns.firstIndex(of: "requests"))
        for line in summary.dropFirst() {
            let id = Int64(line[0])!
            let (count, p99) = try await queue.read { db -> (Int, Double) in
                let window = try Row.fetchOne(db, sql: "SELECT (SELECT t_us FROM events WHERE run_id = ? AND subject = 'measure') AS start, (SELECT t_us FROM events WHERE run_id = ? AND subject = 'drain') AS end", arguments: [id, id])!
                let latencies = try Int64.fetchAll(
                    db, sql: "SELECT done_us - intended_us FROM requests WHERE run_id = ? AND intended_us >= ? AND intended_us <= ? AND status IS NOT NULL ORDER BY 1",
                    arguments: [id, window["start"] as Int64, window["end"] as Int64]
                )
                return (latencies.count, Double(latencies[Int((Double(latencies.count) * 0.99).rounded(.up)) - 1]) / 1_000)
            }
            #expect(Int(line[requestsColumn]) == count, "run \(id)")
            #expect(abs(Double(line[p99Column])! - p99) < 1e-6, "run \(id): \(line[p99Column]) vs \(p99)")
        }

        let report = try ChildProcess("lbctl", ["compare", "--scenario", "quickstart", "--db", database])
        let compared = await report.wait(timeout: .seconds(30))
        #expect(compared.status == 0 && compared.stdout.contains("least-connections"), "\(compared.stderr)")
    }

    @Test("backend-failure: a killed backend costs no client error; down and up again within fall and rise x interval")
    func backendFailure() async throws {
        let scratch = try ScratchDirectory()
        let queue = try await Self.runToEnd("backend-failure", in: scratch, timeout: .seconds(180))
        try await queue.read { db in
            for id in try Int64.fetchAll(db, sql: "SELECT id FROM runs ORDER BY id") {
                let events = try Row.fetchAll(db, sql: "SELECT t_us, kind, subject FROM events WHERE run_id = ? ORDER BY t_us", arguments: [id])
                func time(_ kind: String, _ subject: String) -> Int64? {
                    events.first { ($0["kind"] as String) == kind && ($0["subject"] as String) == subject }?["t_us"]
                }
                let load = try #require(time("phase", "load"))
                let kill = try #require(time("kill", "b2"))
                let restart = try #require(time("restart", "b2"))
                // The timeline counts from the start of the load: 7 s and 13 s, give or take a scheduling delay.
                #expect(abs(kill - load - 7_000_000) < 100_000 && abs(restart - load - 13_000_000) < 1_000_000, "\(kill - load), \(restart - load)")
                let down = try #require(events.first { ($0["kind"] as String) == "health_down" && ($0["t_us"] as Int64) > kill }?["t_us"] as Int64?)
                let up = try #require(events.first { ($0["kind"] as String) == "health_up" && ($0["t_us"] as Int64) > restart }?["t_us"] as Int64?)
                // fall 2 x interval 250 ms, and a check in flight: under 1 s either way.
                #expect(down - kill < 1_000_000 && up - restart < 1_000_000, "down after \(down - kill) us, up after \(up - restart) us")
                let errors = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE run_id = ? AND (error IS NOT NULL OR status <> 200)", arguments: [id])
                #expect(errors == 0, "run \(id)")
                let retried = try Int.fetchOne(db, sql: "SELECT count(*) FROM proxy_requests WHERE run_id = ? AND attempts > 1 AND retried_from = 2", arguments: [id]) ?? 0
                #expect(retried > 0, "requests caught by the kill were retried away from b2")
                // b2 served before the kill and again after it came back.
                let b2After = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE run_id = ? AND backend_id = 2 AND sent_us > ?", arguments: [id, up])
                #expect((b2After ?? 0) > 100)
            }
        }
    }

    @Test("websockets: one per client; only what was on the wire to the killed backend is lost, and no connection goes back to it")
    func webSockets() async throws {
        let scratch = try ScratchDirectory()
        let queue = try await Self.runToEnd("websockets", in: scratch, timeout: .seconds(120))
        try await queue.read { db in
            let runs = try Row.fetchAll(db, sql: "SELECT id, algorithm, status FROM runs ORDER BY id")
            #expect(runs.map { $0["status"] as String } == ["completed", "completed"])
            for run in runs {
                let id: Int64 = run["id"]
                let label: String = run["algorithm"]
                func time(_ kind: String) throws -> Int64 {
                    try #require(try Int64.fetchOne(db, sql: "SELECT min(t_us) FROM events WHERE run_id = ? AND kind = ?", arguments: [id, kind]))
                }
                let (kill, restart) = (try time("kill"), try time("restart"))
                // 30 clients x 20 messages a second x 12 s; each echoed (101) but those on the wire to b2 at
                // the kill: a client has at most one there (its echo takes far less than the 50 ms
                // between its messages), and b2 had 10 clients.
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE run_id = ?", arguments: [id]) == 7_200)
                let lost = try Row.fetchAll(db, sql: "SELECT error, sent_us FROM requests WHERE run_id = ? AND (status IS NOT 101 OR error IS NOT NULL)", arguments: [id])
                #expect(lost.count <= 10 && lost.allSatisfy { ($0["error"] as String?) == "closed" && ($0["sent_us"] as Int64) < kill + 100_000 }, "\(label): \(lost)")
                // After the kill, b2's clients are on b1 and b3, and after its restart none comes back to it.
                let after = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT b.name, count(*) AS messages, count(DISTINCT r.client_ip) AS clients FROM requests r
                        JOIN backends b ON b.run_id = r.run_id AND b.id = r.backend_id
                        WHERE r.run_id = ? AND r.sent_us > ? GROUP BY b.name ORDER BY b.name
                        """,
                    arguments: [id, kill + 500_000]
                )
                #expect(after.map { $0["name"] as String } == ["b1", "b3"], "\(label): \(after)")
                #expect(after.map { $0["clients"] as Int }.reduce(0, +) == 30, "\(label): \(after)")
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE run_id = ? AND backend_id = 2 AND sent_us > ?", arguments: [id, restart]) == 0)
                // The WebSockets' own events: 30 opened at the start; b2's 10 closed at the kill and opened
                // again on b1 and b3; all 40 closed by the end.
                let opened = try String.fetchAll(
                    db, sql: "SELECT json_extract(detail_json, '$.backend') FROM events WHERE run_id = ? AND kind = 'ws_open' AND t_us > ? ORDER BY t_us",
                    arguments: [id, kill]
                )
                #expect(opened.count == 10 && Set(opened).isSubset(of: ["b1", "b3"]), "\(label): \(opened)")
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE run_id = ? AND kind = 'ws_open'", arguments: [id]) == 40)
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE run_id = ? AND kind = 'ws_close'", arguments: [id]) == 40)
                if label == "least-connections" {
                    // The in-flight counts it balances are the connections: 10 on each before the kill, and
                    // b2's 10 shared between the other two after it. (The proxy's two event loops share the
                    // counts; two handshakes picked in the same instant on both may see the same least
                    // loaded backend, hence one either way.)
                    let before = try Int.fetchAll(
                        db, sql: "SELECT count(DISTINCT client_ip) FROM requests WHERE run_id = ? AND sent_us < ? AND backend_id IS NOT NULL GROUP BY backend_id",
                        arguments: [id, kill]
                    )
                    #expect(before.count == 3 && before.allSatisfy { (9...11).contains($0) }, "\(before)")
                    let split = after.map { $0["clients"] as Int }
                    #expect(abs(split[0] - split[1]) <= 2, "\(after)")
                }
            }
        }
    }

    @Test("Ctrl-C, or SIGHUP when the terminal closes: the run is marked interrupted, its records kept from both sides, nothing left running", arguments: [SIGINT, SIGHUP])
    func interrupted(signal: Int32) async throws {
        let scratch = try ScratchDirectory()
        let database = scratch.path("lblab.db")
        let run = try ChildProcess("lbctl", ["run", "--scenario", Self.scenario("quickstart"), "--duration", "30s", "--db", database, "--out", scratch.path("out")])
        // Until the load has run for a while: requests in the file, staged while the run records.
        var recorded = 0
        let sql = """
            SELECT (SELECT count(*) FROM requests)
                + (SELECT coalesce(sum(row_count), 0) FROM staged_records WHERE kind = 'requests')
            """
        for _ in 0..<300 where recorded < 2_000 {
            try await Task.sleep(for: .milliseconds(100))
            if let queue = try? DatabaseQueue(path: database) {
                recorded = (try? await queue.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }) ?? 0
            }
        }
        #expect(recorded >= 2_000)
        let recordedBefore = recorded
        run.send(signal)
        let result = await run.wait(timeout: .seconds(60))
        #expect(result.status == 130, "\(result.stderr)")
        try Self.expectNothingLeft(harness: run.pid, database: database)
        let queue = try DatabaseQueue(path: database)
        try await queue.read { db in
            let runs = try Row.fetchAll(db, sql: "SELECT id, status FROM runs")
            #expect(runs.count == 1 && runs.first?["status"] == "interrupted", "no further run starts")
            let requests = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests") ?? 0
            #expect(requests >= recordedBefore)
            let staged = try Int.fetchOne(db, sql: "SELECT count(*) FROM staged_records") ?? 0
            #expect(staged == 0, "every staged record became a row as the run stopped")
            let answered = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE status IS NOT NULL") ?? 0
            let joined = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests q JOIN proxy_requests p ON p.request_id = q.id AND p.run_id = q.run_id WHERE q.status IS NOT NULL") ?? 0
            #expect(answered > 0 && joined == answered, "the proxy's rows were written as it stopped")
            let stop = try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE kind = 'phase' AND subject = 'stop'")
            #expect(stop == 1)
        }
    }

    @Test("a scenario with a mistake is refused before anything starts, naming file, line and field")
    func badScenario() async throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path("broken.yml")
        try "duration: 10s\nalgorithms: [round-robin]\nbackends: {count: 2, latency: 5}\nload: {clients: 2, rate: 1}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let run = try ChildProcess("lbctl", ["run", "--scenario", path, "--db", scratch.path("x.db")])
        let result = await run.wait(timeout: .seconds(30))
        #expect(result.status == 64)
        #expect(result.stderr.contains("broken.yml:3: backends.latency:"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("x.db")), "nothing was created")
    }

    /// Runs the shipped scenario `name` to its end into `lblab.db` in `scratch`, expects it to exit 0 and
    /// leave nothing running, and opens the database it recorded.
    static func runToEnd(_ name: String, in scratch: borrowing ScratchDirectory, timeout: Duration) async throws -> DatabaseQueue {
        let database = scratch.path("lblab.db")
        let run = try ChildProcess("lbctl", ["run", "--scenario", Self.scenario(name), "--db", database, "--out", scratch.path("out")])
        let result = await run.wait(timeout: timeout)
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        try Self.expectNothingLeft(harness: run.pid, database: database)
        return try DatabaseQueue(path: database)
    }

    /// No process started for this database is alive, and no cgroup of the harness remains.
    static func expectNothingLeft(harness: Int32, database: String) throws {
        let processes = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { Int32($0) }
        for pid in processes where pid != getpid() {
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            let commandLine = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ").map { String(decoding: $0.map { $0 == 0 ? 10 : $0 }, as: UTF8.self) } ?? ""
            #expect(!commandLine.contains(database), "still running: \(pid) \(commandLine)")
            #expect(!environment.contains("LBLAB_PARENT_PID=\(harness)\n"), "a child of the harness still runs: \(pid) \(commandLine)")
        }
        let find = Process()
        find.executableURL = URL(fileURLWithPath: "/usr/bin/find")
        find.arguments = ["/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-name", "lblab-\(harness)"]
        let output = Pipe()
        find.standardOutput = output
        find.standardError = FileHandle.nullDevice
        try find.run()
        find.waitUntilExit()
        let left = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(left.isEmpty, "cgroups left: \(left)")
    }
}
