import Foundation
import GRDB
import Testing

extension ScenarioRunTests {
    /// Every timeline action besides kill, stop, resume and restart (which backend-failure covers), on
    /// five backends under weighted round robin, 400 requests a second, one action a second or two.
    static let timelineActions = """
        name: timeline-actions
        seed: 5
        duration: 10s
        warmup: 1s
        algorithms: [weighted-round-robin]
        backends:
          - {name: a, latency: 2ms}
          - {name: b, latency: 2ms}
          - {name: c, latency: 2ms}
          - {name: d, latency: 2ms}
          - {name: e, latency: 2ms, in-service: false}
        load: {clients: 20, rate: 20, arrival: constant}
        timeline:
          - {at: 2s, slow: {backend: a, latency: 20ms}}
          - {at: 3s, errors: {backend: b, rate: 0.5}}
          - {at: 4s, weight: {backend: c, weight: 3}}
          - {at: 5s, add: e}
          - {at: 6s, remove: d}
          - {at: 8s, drain: c}
        proxy: {threads: 1}
        expect:
          - requests(weighted-round-robin) > 0
        """

    /// What each action did, read from run `id`'s records: a step takes effect within 300 ms of its
    /// event (the control call and the requests already on their way).
    static func checkTimelineActions(_ queue: DatabaseQueue, run id: Int64, kind: String) async throws {
        try await queue.read { db in
            let events = try Row.fetchAll(db, sql: "SELECT kind, subject, t_us FROM events WHERE run_id = ? AND kind <> 'phase'", arguments: [id])
            let at = Dictionary(events.map { ($0["kind"] as String, $0["t_us"] as Int64) }, uniquingKeysWith: min)
            for action in ["slow", "errors", "weight", "add", "remove", "drain"] { #expect(at[action] != nil, "\(kind): no \(action) event") }
            guard let slow = at["slow"], let errors = at["errors"], let weight = at["weight"], let add = at["add"], let remove = at["remove"],
                let drain = at["drain"]
            else { return }
            let settle: Int64 = 300_000
            let backend = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT name, id FROM backends WHERE run_id = ?", arguments: [id]).map { ($0["name"] as String, $0["id"] as Int) })
            func serviceMillis(_ name: String, _ from: Int64, _ to: Int64) throws -> [Double] {
                try Int64.fetchAll(
                    db, sql: "SELECT done_us - sent_us FROM requests WHERE run_id = ? AND backend_id = ? AND sent_us >= ? AND sent_us < ? AND status IS NOT NULL ORDER BY 1",
                    arguments: [id, backend[name], from, to]
                ).map { Double($0) / 1_000 }
            }
            func median(_ values: [Double]) -> Double { values.isEmpty ? .nan : values[values.count / 2] }
            // slow: a's answers take 2 ms before and 20 ms after.
            #expect(median(try serviceMillis("a", slow - 1_000_000, slow)) < 10, "\(kind)")
            #expect(median(try serviceMillis("a", slow + settle, errors)) > 15, "\(kind)")
            // errors: none from b before, half after. b answers about 80 requests a second, under a
            // weight of 1 in 6 to 7 after the weight step: over 3 s, some 200; the share of 500s then has a
            // standard error of 0.035, and 0.35 to 0.65 is more than four of them either side.
            let before = try Row.fetchOne(db, sql: "SELECT count(*) AS n, sum(status = 500) AS bad FROM requests WHERE run_id = ? AND backend_id = ? AND sent_us < ?", arguments: [id, backend["b"], errors])!
            #expect((before["n"] as Int) > 50 && (before["bad"] as Int? ?? 0) == 0, "\(kind): \(before)")
            let after = try Row.fetchOne(db, sql: "SELECT count(*) AS n, sum(status = 500) AS bad FROM requests WHERE run_id = ? AND backend_id = ? AND sent_us >= ?", arguments: [id, backend["b"], errors + settle])!
            let share = Double(after["bad"] as Int? ?? 0) / Double(max(1, after["n"] as Int))
            #expect((after["n"] as Int) > 100 && share > 0.35 && share < 0.65, "\(kind): \(after)")
            func picks(_ from: Int64, _ to: Int64) throws -> [Int: Int] {
                Dictionary(uniqueKeysWithValues: try Row.fetchAll(
                    db, sql: "SELECT backend_id, count(*) AS n FROM proxy_requests WHERE run_id = ? AND picked_us >= ? AND picked_us < ? AND backend_id IS NOT NULL GROUP BY backend_id",
                    arguments: [id, from, to]
                ).map { ($0["backend_id"] as Int, $0["n"] as Int) })
            }
            // weight: c at 3 beside a, b and d at 1 is half of the picks (smooth weighted round robin).
            let weighted = try picks(weight + settle, add)
            let cShare = Double(weighted[backend["c"]!] ?? 0) / Double(max(1, weighted.values.reduce(0, +)))
            #expect(abs(cShare - 0.5) < 0.05, "\(kind): \(weighted)")
            // add: e, out of service at the start, is picked only after it is added, a seventh of the time.
            #expect(try picks(0, add)[backend["e"]!] == nil, "\(kind)")
            let added = try picks(add + settle, remove)
            let eShare = Double(added[backend["e"]!] ?? 0) / Double(max(1, added.values.reduce(0, +)))
            #expect(abs(eShare - 1.0 / 7) < 0.04, "\(kind): \(added)")
            // remove, drain: no new picks after.
            #expect(try picks(remove + settle, .max)[backend["d"]!] == nil, "\(kind)")
            #expect(try picks(drain + settle, .max)[backend["c"]!] == nil, "\(kind)")
            #expect((try picks(drain + settle, .max)[backend["e"]!] ?? 0) > 0, "\(kind)")
        }
    }

    @Test("every timeline action takes effect, in a real run and a simulated one: slow, errors, weight, add, remove, drain")
    func timelineActionsTakeEffect() async throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path("timeline-actions.yml")
        try Self.timelineActions.write(toFile: path, atomically: true, encoding: .utf8)
        for command in ["run", "sim"] {
            let database = scratch.path("\(command).db")
            let process = try ChildProcess("lbctl", [command, "--scenario", path, "--db", database] + (command == "run" ? ["--out", scratch.path("out")] : []))
            let result = await process.wait(timeout: .seconds(120))
            #expect(result.status == 0, "\(command): \(result.stderr)\n\(result.stdout)")
            if command == "run" { try Self.expectNothingLeft(harness: process.pid, database: database) }
            try await Self.checkTimelineActions(try DatabaseQueue(path: database), run: 1, kind: command)
        }
    }
}
