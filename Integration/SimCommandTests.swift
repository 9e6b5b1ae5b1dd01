import Foundation
import GRDB
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `lbctl sim` end to end: every shipped scenario in virtual time, into the same kind of file as real
/// runs, and an interrupted simulation.
@Suite("lbctl sim", .serialized)
struct SimCommandTests {
    /// The shipped scenarios.
    static let scenarios = [
        "quickstart", "slow-backend", "heterogeneous", "backend-failure", "hot-keys", "scale-out", "websockets", "cpu-throttled", "four-queues",
        "degraded-node", "weights", "sweep-load", "sweep-fleet",
    ]

    @Test("every shipped scenario runs in virtual time, its expectations hold, each algorithm a completed run of kind sim with its records, phases and samples")
    func everyScenario() async throws {
        let shipped = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("scenarios").path)
            .filter { $0.hasSuffix(".yml") }.map { String($0.dropLast(4)) }
        #expect(Set(shipped) == Set(Self.scenarios), "a scenario was added or removed: list it here")
        let scratch = try ScratchDirectory()
        for name in Self.scenarios {
            let database = scratch.path("\(name).db")
            let sim = try ChildProcess("lbctl", ["sim", "--scenario", ScenarioRunTests.scenario(name), "--db", database])
            let result = await sim.wait(timeout: .seconds(120))
            // Each scenario's expect: holds in virtual time as it does in a real run.
            #expect(result.status == 0, "\(name): \(result.stderr)\n\(result.stdout)")
            #expect(!result.stdout.contains("FAIL"), "\(name): \(result.stdout)")
            let queue = try DatabaseQueue(path: database)
            try await queue.read { db in
                let runs = try Row.fetchAll(db, sql: "SELECT id, kind, status, algorithm, seed, git_commit FROM runs ORDER BY id")
                #expect(!runs.isEmpty && runs.allSatisfy { ($0["kind"] as String) == "sim" && ($0["status"] as String) == "completed" }, "\(name): \(runs)")
                #expect(runs.allSatisfy { ($0["git_commit"] as String?)?.count == 40 })
                for run in runs {
                    let id: Int64 = run["id"]
                    let requests = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE run_id = ?", arguments: [id]) ?? 0
                    #expect(requests > 1_000, "\(name) run \(id): \(requests) requests")
                    let phases = try String.fetchAll(db, sql: "SELECT subject FROM events WHERE run_id = ? AND kind = 'phase' ORDER BY t_us, rowid", arguments: [id])
                    #expect(phases == ["load", "measure", "drain", "stop"], "\(name) run \(id): \(phases)")
                    let backends = try Int.fetchOne(db, sql: "SELECT count(*) FROM backends WHERE run_id = ?", arguments: [id]) ?? 0
                    let sampled = try Int.fetchOne(db, sql: "SELECT count(DISTINCT source) FROM samples WHERE run_id = ?", arguments: [id])
                    #expect(sampled == backends)
                }
            }
        }
    }

    @Test("the same scenario and seed simulated twice gives the same rows; --seed another")
    func reproducible() async throws {
        let scratch = try ScratchDirectory()
        var rows: [[Row]] = []
        for (file, seed) in [("a.db", nil), ("b.db", nil), ("c.db", "8")] as [(String, String?)] {
            let sim = try ChildProcess(
                "lbctl",
                ["sim", "--scenario", ScenarioRunTests.scenario("backend-failure"), "--algorithms", "LC", "--db", scratch.path(file)] + (seed.map { ["--seed", $0] } ?? [])
            )
            let result = await sim.wait(timeout: .seconds(60))
            #expect(result.status == 0, "\(result.stderr)")
            rows.append(
                try DatabaseQueue(path: scratch.path(file)).read { db in
                    try Row.fetchAll(db, sql: "SELECT id, client_ip, intended_us, done_us, status, backend_id FROM requests ORDER BY id")
                }
            )
        }
        #expect(rows[0].count > 19_000 && rows[0] == rows[1])
        #expect(rows[0] != rows[2])
    }

    @Test("a real run and a simulated run of one scenario in one file: lbctl compare shows them side by side")
    func sideBySide() async throws {
        let scratch = try ScratchDirectory()
        let database = scratch.path("lblab.db")
        let real = try ChildProcess("lbctl", ["run", "--scenario", ScenarioRunTests.scenario("quickstart"), "--algorithms", "rr", "--duration", "3s", "--db", database, "--out", scratch.path("out")])
        let ran = await real.wait(timeout: .seconds(120))
        #expect(ran.status == 0 || ran.stdout.contains("(steal)"), "\(ran.stderr)\n\(ran.stdout)")
        let sim = try ChildProcess("lbctl", ["sim", "--scenario", ScenarioRunTests.scenario("quickstart"), "--algorithms", "rr,LC", "--db", database])
        let simulated = await sim.wait(timeout: .seconds(60))
        #expect(simulated.status == 0, "\(simulated.stderr)")
        let compare = try ChildProcess("lbctl", ["compare", "--scenario", "quickstart", "--db", database])
        let compared = await compare.wait(timeout: .seconds(60))
        #expect(compared.status == 0, "\(compared.stderr)")
        #expect(!compared.stdout.split(separator: "\n").contains { $0.hasPrefix("round-robin ") && !$0.hasPrefix("round-robin [") }, "no group mixes the kinds: \(compared.stdout)")
        for label in ["round-robin [real]", "round-robin [sim]", "least-connections [sim]"] {
            #expect(compared.stdout.split(separator: "\n").contains { $0.hasPrefix(label + " ") }, "\(label) in \(compared.stdout)")
        }
    }

    @Test("--no-records keeps no request rows but totals, from which the verdicts and lbctl report read the same figures")
    func totalsInsteadOfRows() async throws {
        let scratch = try ScratchDirectory()
        for name in ["scale-out", "slow-backend"] {
            var outputs: [String] = []
            for (file, flags) in [("rows.db", [String]()), ("totals.db", ["--no-records"])] {
                let database = scratch.path("\(name)-\(file)")
                let sim = try ChildProcess("lbctl", ["sim", "--scenario", ScenarioRunTests.scenario(name), "--db", database] + flags)
                let result = await sim.wait(timeout: .seconds(120))
                #expect(result.status == 0 && !result.stdout.contains("FAIL"), "\(name) \(flags): \(result.stderr)\n\(result.stdout)")
                let report = try ChildProcess("lbctl", ["report", "--db", database])
                let reported = await report.wait(timeout: .seconds(60))
                #expect(reported.status == 0, "\(reported.stderr)")
                outputs.append(reported.stdout)
                try await DatabaseQueue(path: database).read { db in
                    let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests") ?? 0
                    let totals = try Int.fetchOne(db, sql: "SELECT count(*) FROM totals WHERE backend_id IS NULL") ?? 0
                    let runs = try Int.fetchOne(db, sql: "SELECT count(*) FROM runs") ?? 0
                    #expect(flags.isEmpty ? rows > 1_000 && totals == 0 : rows == 0 && totals == runs, "\(name) \(flags): \(rows) rows, \(totals) totals")
                }
            }
            // Line for line the same report, but for the start times, the percentiles (to the histogram's
            // resolution), "counted" for "recorded", and the hops, which need both sides' rows.
            let lines = outputs.map { $0.split(separator: "\n").filter { !$0.hasPrefix("run ") && !$0.contains("(from ") && !$0.hasPrefix("  hops ") }.map { $0.replacingOccurrences(of: "counted", with: "recorded") } }
            #expect(lines[0] == lines[1] && lines[0].count > 10, "\(name):\n\(outputs[0])\n\(outputs[1])")
            #expect(outputs[1].contains("corrected (from intended)"))
        }
    }

    @Test("Ctrl-C stops the simulation: the run is marked interrupted and keeps its records")
    func interrupted() async throws {
        let scratch = try ScratchDirectory()
        let database = scratch.path("lblab.db")
        // A day of quickstart's load in virtual time: far more than the few seconds before the signal.
        let sim = try ChildProcess("lbctl", ["sim", "--scenario", ScenarioRunTests.scenario("quickstart"), "--duration", "24h", "--algorithms", "rr", "--db", database])
        var recorded = 0
        for _ in 0..<300 where recorded < 200_000 {
            try await Task.sleep(for: .milliseconds(100))
            if let queue = try? DatabaseQueue(path: database) {
                recorded = (try? await queue.read { db in try Int.fetchOne(db, sql: "SELECT coalesce(sum(row_count), 0) FROM staged_records") ?? 0 }) ?? 0
            }
        }
        #expect(recorded >= 200_000)
        sim.send(SIGINT)
        let result = await sim.wait(timeout: .seconds(60))
        #expect(result.status == 130, "\(result.stderr)")
        let recordedBefore = recorded
        try await DatabaseQueue(path: database).read { db in
            let runs = try Row.fetchAll(db, sql: "SELECT status, duration_us FROM runs")
            #expect(runs.count == 1 && runs.first?["status"] == "interrupted")
            let requests = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests") ?? 0
            #expect(requests >= recordedBefore)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM staged_records") == 0)
            let open = try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE error = 'interrupted'") ?? 0
            #expect(open < 100, "only the requests in flight at the stop: \(open)")
        }
    }
}
