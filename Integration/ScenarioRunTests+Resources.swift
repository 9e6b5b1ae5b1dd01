import Foundation
import GRDB
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension ScenarioRunTests {
    @Test(
        "cpu-throttled, shortened: least-resources gets the backends' CPU figures and steers away from the one at its quota",
        .enabled(if: getuid() == 0, "CPU quotas need cgroups, which lbctl run makes as root")
    )
    func leastResourcesSteersAway() async throws {
        let scratch = try ScratchDirectory()
        let database = scratch.path("lblab.db")
        let run = try ChildProcess(
            "lbctl",
            ["run", "--scenario", Self.scenario("cpu-throttled"), "--algorithms", "round-robin,least-resources", "--duration", "8s", "--db", database, "--out", scratch.path("out")]
        )
        let result = await run.wait(timeout: .seconds(120))
        #expect(result.status == 0 || result.stdout.contains("(steal)"), "\(result.stderr)\n\(result.stdout)")
        try Self.expectNothingLeft(harness: run.pid, database: database)
        let queue = try DatabaseQueue(path: database)
        try await queue.read { db in
            let containers = try String.fetchOne(db, sql: "SELECT json_extract(params_json, '$.containers') FROM runs WHERE id = 1")
            try #require(containers?.hasPrefix("cgroup") == true, "no CPU quotas without cgroups: \(containers ?? "?")")
            func share(_ run: Int, _ backend: String) throws -> Double {
                let counts = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT sum(b.name = ?) AS mine, count(*) AS all_ FROM requests q
                        JOIN backends b ON b.run_id = q.run_id AND b.id = q.backend_id WHERE q.run_id = ?
                        """,
                    arguments: [backend, run]
                )!
                return Double(counts["mine"] as Int) / Double(max(1, counts["all_"] as Int))
            }
            // Round robin: a third each, b3 included, whatever its quota.
            #expect(abs(try share(1, "b3") - 1.0 / 3) < 0.01)
            // least-resources got a figure of every backend with (nearly) every sample after the first,
            // and none went to round robin's proxy.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE run_id = 1 AND kind = 'usage'") == 0)
            let figures = try Row.fetchAll(
                db,
                sql: """
                    SELECT subject, count(*) AS n, avg(CAST(json_extract(detail_json, '$.cpu') AS REAL)) AS cpu FROM events
                    WHERE run_id = 2 AND kind = 'usage' AND t_us > (SELECT t_us FROM events WHERE run_id = 2 AND subject = 'measure')
                    GROUP BY subject ORDER BY subject
                    """
            )
            #expect(figures.map { $0["subject"] as String } == ["b1", "b2", "b3"], "\(figures)")
            // 8 s less the 3 s warm-up, at 4 samples a second: about 20 each.
            #expect(figures.allSatisfy { ($0["n"] as Int) >= 15 }, "\(figures)")
            // Each works at a fair share of its quota (the figures are shares, not cores); least-resources
            // levels them, and so sends b3 fewer requests: round robin's third would hold it at 0.9 of its
            // quota (90 req/s x 2 ms of 0.2 cores) against the others' 0.36, a fifth at about 0.55.
            let cpu = figures.map { $0["cpu"] as Double }
            #expect(cpu.allSatisfy { (0.2...1.2).contains($0) }, "\(figures)")
            let steered = try share(2, "b3")
            #expect(steered < 0.25, "b3's share under least-resources: \(steered)")
        }
    }
}
