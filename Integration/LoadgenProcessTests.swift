import Foundation
import GRDB
import LBCore
import LBTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `loadgen` and `lbctl backend` as separate processes on loopback, as a user runs them.
@Suite("loadgen against lbctl backend", .serialized)
struct LoadgenProcessTests {
    @Test("every request is one row; exactly -clients TEST-NET addresses; the asked rate is achieved")
    func rowsClientsRate() async throws {
        let scratch = try ScratchDirectory()
        let (backend, port) = try await startBackend(name: "b1", ["-latency", "1ms"])
        defer { Task { await backend.stop() } }
        let database = scratch.path("lblab.db")
        let loadgen = try ChildProcess(
            "loadgen",
            ["-url", "http://127.0.0.1:\(port)/", "-clients", "40", "-rate", "25", "-duration", "3s", "-db", database, "--json"]
        )
        let result = await loadgen.wait()
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        let sent = report["sent"] as! Int
        let achieved = report["achievedRate"] as! Double
        // 40 clients × 25 req/s × 3 s on a constant schedule.
        #expect(sent == 3_000)
        #expect(abs(achieved / 1_000 - 1) < 0.01)
        let queue = try DatabaseQueue(path: database)
        try await queue.read { db in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM requests") == sent)
            let ips = try String.fetchAll(db, sql: "SELECT DISTINCT client_ip FROM requests")
            #expect(ips.count == 40)
            #expect(ips.allSatisfy(ClientAddresses.contains))
            #expect(try String.fetchOne(db, sql: "SELECT status FROM runs") == "completed")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE backend_id = 0 AND status = 200") == sent)
        }
        await backend.stop()
    }

    @Test("ws:// through lbctl proxy -algo LC over three lbctl backend -websocket: a backend per WebSocket, three clients on each")
    func webSocketsThroughProxy() async throws {
        let scratch = try ScratchDirectory()
        var started: [(ChildProcess, Int)] = []
        for name in ["b1", "b2", "b3"] { started.append(try await startBackend(name: name, ["-websocket", "/ws"])) }
        let backends = started
        defer { Task { for (backend, _) in backends { await backend.stop() } } }
        let port = try freePort()
        let proxy = try ChildProcess(
            "lbctl",
            ["proxy", "-listen", "127.0.0.1:\(port)", "-algo", "LC", "-threads", "1", "-admin", "127.0.0.1:\(try freePort())"]
                + backends.flatMap { ["-backend", "127.0.0.1:\($0.1)"] }
        )
        defer { Task { await proxy.stop() } }
        var listening = false
        for _ in 0..<200 where !listening {
            listening = (try? RawConnection(port: port)) != nil
            if !listening { try await Task.sleep(for: .milliseconds(25)) }
        }
        let database = scratch.path("lblab.db")
        let loadgen = try ChildProcess(
            "loadgen",
            ["-url", "ws://127.0.0.1:\(port)/ws", "-clients", "9", "-rate", "20", "-duration", "2s", "-db", database, "-json"]
        )
        let result = await loadgen.wait()
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        #expect(report["transport"] as? String == "websocket")
        #expect(report["peakConnections"] as? Int == 9 && report["maxConnections"] as? Int == 9, "one WebSocket per client")
        // 9 clients × 20 messages a second × 2 s; least connections puts three WebSockets on each backend
        // (a WebSocket holds its backend for its life), so each backend echoes three clients' messages.
        #expect(report["sent"] as? Int == 360)
        let queue = try DatabaseQueue(path: database)
        try await queue.read { db in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE status = 101 AND error IS NULL") == 360)
            let perBackend = try Row.fetchAll(
                db,
                sql: """
                    SELECT b.name, count(*) AS messages, count(DISTINCT r.client_ip) AS clients
                    FROM requests r JOIN backends b ON b.id = r.backend_id GROUP BY b.name
                    """
            )
            #expect(perBackend.count == 3, "\(perBackend)")
            for row in perBackend {
                #expect(row["messages"] as Int == 120 && row["clients"] as Int == 3, "\(perBackend)")
            }
        }
        await proxy.stop()
        for (backend, _) in backends { await backend.stop() }
    }

    @Test(
        "progress is one line rewritten in place on a terminal, and a line per second otherwise",
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs util-linux's script")
    )
    func progressOnTerminal() async throws {
        let (backend, port) = try await startBackend(name: "b1")
        defer { Task { await backend.stop() } }
        let arguments = ["-url", "http://127.0.0.1:\(port)/", "-clients", "5", "-rate", "20", "-duration", "3500ms"]
        // On a terminal: `script` runs loadgen on a pseudo-terminal and copies what it shows.
        let command = ([executable("loadgen").path] + arguments).joined(separator: " ")
        let onTerminal = try ChildProcess(
            executableURL: URL(fileURLWithPath: "/usr/bin/script"),
            ["--quiet", "--return", "--command", command, "/dev/null"]
        )
        let shown = await onTerminal.wait()
        #expect(shown.status == 0, "\(shown.stdout)")
        let updates = shown.stdout.components(separatedBy: "\r\u{1B}[K").dropFirst()
        #expect(updates.count >= 3, "one update a second for 3.5 s: \(shown.stdout.debugDescription)")
        #expect(updates.dropLast().allSatisfy { !$0.contains("\n") }, "updates stay on one line")
        #expect(updates.allSatisfy { $0.contains("sent") && $0.contains("req/s") })
        #expect(updates.last?.contains("requests:") == true, "the summary follows the last update")
        // Not a terminal: plain lines, nothing to move the cursor.
        let piped = try ChildProcess("loadgen", arguments)
        let logged = await piped.wait()
        #expect(logged.status == 0, "\(logged.stderr)")
        let lines = logged.stderr.split(separator: "\n").filter { $0.contains("req/s") && $0.contains("sent") }
        #expect(lines.count >= 3)
        #expect(!logged.stderr.contains("\r") && !logged.stderr.contains("\u{1B}"))
        await backend.stop()
    }

    @Test("Ctrl-C, or SIGHUP when its terminal closes, keeps every record taken so far and marks the run interrupted", arguments: [SIGINT, SIGHUP])
    func interruptedRun(signal: Int32) async throws {
        let scratch = try ScratchDirectory()
        let (backend, port) = try await startBackend(name: "b1", ["-latency", "100ms"])
        let database = scratch.path("interrupted.db")
        let loadgen = try ChildProcess(
            "loadgen",
            ["-url", "http://127.0.0.1:\(port)/", "-clients", "20", "-rate", "20", "-duration", "60s", "-db", database, "-json"]
        )
        try await Task.sleep(for: .milliseconds(1_500))
        loadgen.send(signal)
        let result = await loadgen.wait(timeout: .seconds(15))
        await backend.stop()
        #expect(result.status == 130, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        #expect(report["interrupted"] as? Bool == true)
        let completed = report["completed"] as! Int
        let queue = try DatabaseQueue(path: database)
        try await queue.read { db in
            #expect(try String.fetchOne(db, sql: "SELECT status FROM runs") == "interrupted")
            let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests")!
            #expect(rows == completed)
            #expect(rows > 400)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE error = 'interrupted'")! > 0)
        }
    }

    @Test("a loadgen killed outright: what it had staged becomes rows the next time LBLab opens the file")
    func killedRunRecovered() async throws {
        let scratch = try ScratchDirectory()
        let (backend, port) = try await startBackend(name: "b1", [])
        let database = scratch.path("killed.db")
        let loadgen = try ChildProcess(
            "loadgen",
            ["-url", "http://127.0.0.1:\(port)/", "-clients", "20", "-rate", "50", "-duration", "60s", "-db", database]
        )
        // Until it has staged a few batches (one every quarter second at this rate).
        let staged = "SELECT coalesce(sum(row_count), 0) FROM staged_records"
        var seen = 0
        for _ in 0..<100 where seen < 1_000 {
            try await Task.sleep(for: .milliseconds(100))
            if let queue = try? DatabaseQueue(path: database) {
                seen = (try? await queue.read { db in try Int.fetchOne(db, sql: staged) ?? 0 }) ?? 0
            }
        }
        loadgen.send(SIGKILL)
        _ = await loadgen.wait(timeout: .seconds(15))
        await backend.stop()
        let left = try await DatabaseQueue(path: database).read { db in try Int.fetchOne(db, sql: staged) ?? 0 }
        #expect(left >= 1_000, "the killed process left its staged records (\(seen) seen before the kill)")

        let runs = try ChildProcess("lbctl", ["runs", "--db", database])
        let listing = await runs.wait(timeout: .seconds(30))
        #expect(listing.status == 0, "\(listing.stderr)")
        let (chunks, rows, ids, status) = try await DatabaseQueue(path: database).read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM staged_records"),
                try Int.fetchOne(db, sql: "SELECT count(*) FROM requests"),
                try Int.fetchOne(db, sql: "SELECT count(DISTINCT id) FROM requests"),
                try String.fetchOne(db, sql: "SELECT status FROM runs")
            )
        }
        #expect(chunks == 0 && rows == left && ids == left)
        #expect(status == "running", "nobody knows how it ended")
    }

    @Test(
        "bad input: one line naming the flag, exit code not 0",
        arguments: [
            (["-url", "not a url"], "-url"),
            (["-url", "https://127.0.0.1:1/"], "-url"),
            (["-rate", "0"], "-rate"),
            (["-duration", "10"], "-duration"),
            (["-clients", "200000"], "-clients"),
            (["-frobnicate", "1"], "frobnicate"),
            (["-header", "X-Forwarded-For: 10.0.0.1"], "-header"),
            (["-header", "Content-Length: 5"], "-header"),
            (["-keys", "10", "-header", "X-LBLab-Key: 1"], "-header"),
            (["-url", "http://127.0.0.1:1/", "-duration", "1s"], "-url"),
            // A flag of the other loop, or one without the flag it qualifies, would be ignored.
            (["-connections", "5"], "-connections"),
            (["-closed", "-rate", "5"], "-rate"),
            (["-closed", "-total-rate", "500"], "-total-rate"),
            (["-closed", "-arrival", "poisson"], "-arrival"),
            (["-closed", "-max-connections", "5"], "-max-connections"),
            (["-zipf", "1.1"], "-zipf"),
            // A WebSocket opens with GET, and its messages carry no headers.
            (["-url", "ws://127.0.0.1:1/ws", "-method", "POST"], "-method"),
            (["-url", "ws://127.0.0.1:1/ws", "-keys", "10"], "-keys"),
            (["-url", "ws://127.0.0.1:1/ws", "-max-connections", "5"], "-max-connections"),
            (["-url", "wss://127.0.0.1:1/ws"], "-url"),
        ]
    )
    func badInput(arguments: [String], flag: String) async throws {
        let loadgen = try ChildProcess("loadgen", arguments)
        let result = await loadgen.wait(timeout: .seconds(20))
        #expect(result.status != 0)
        let errorLine = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(errorLine.contains(flag), "stderr: \(result.stderr)")
    }

    @Test("flag values mutated at random: each run ends by itself, and one that fails names the flag")
    func mutatedFlags() async throws {
        let (backend, port) = try await startBackend(name: "b1")
        defer { Task { await backend.stop() } }
        // The URL is left alone: a mutated host could be looked up by name, off loopback.
        let flags = [
            ("-clients", "3"), ("-rate", "20"), ("-duration", "2s"), ("-requests", "3"), ("-timeout", "2s"),
            ("-header", "X-Test: yes"), ("-method", "GET"), ("-seed", "7"), ("-arrival", "poisson"), ("-keys", "5"),
            ("-zipf", "1.1"), ("-warmup", "0s"), ("-max-connections", "8"), ("-body", "hello"),
        ]
        let refused = try await runMutatingFlags("loadgen", ["-url", "http://127.0.0.1:\(port)/"], flags, rounds: 112, seed: 0xF1A6)
        #expect(refused > 20 && refused < 100, "\(refused) of 112 refused")
    }

    @Test("the same over WebSockets: each run ends by itself, and one that fails names the flag")
    func mutatedFlagsWebSocket() async throws {
        let (backend, port) = try await startBackend(name: "b1", ["-websocket", "/ws"])
        defer { Task { await backend.stop() } }
        let flags = [
            ("-clients", "3"), ("-rate", "20"), ("-duration", "2s"), ("-requests", "3"), ("-timeout", "2s"),
            ("-header", "X-Test: yes"), ("-method", "GET"), ("-seed", "7"), ("-arrival", "poisson"), ("-warmup", "0s"),
            ("-body", "hello"),
        ]
        let refused = try await runMutatingFlags("loadgen", ["-url", "ws://127.0.0.1:\(port)/ws"], flags, rounds: 44, seed: 0xF1A8)
        #expect(refused > 5 && refused < 40, "\(refused) of 44 refused")
    }

    @Test(
        "lbctl backend refuses bad flags the same way",
        arguments: [
            (["-latency", "lognormal(5ms)"], "-latency"),
            (["-queue", "5"], "-queue"),  // a queue beyond no -capacity would be ignored
            (["-websocket", "ws"], "-websocket"),
            (["-websocket", "/health"], "-websocket"),
        ]
    )
    func backendBadInput(arguments: [String], flag: String) async throws {
        let result = await (try ChildProcess("lbctl", ["backend", "-listen", "127.0.0.1:0"] + arguments)).wait(timeout: .seconds(10))
        #expect(result.status != 0)
        let errorLine = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(errorLine.contains(flag), "stderr: \(result.stderr)")
    }
}
