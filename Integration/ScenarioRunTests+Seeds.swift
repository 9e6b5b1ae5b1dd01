import Foundation
import GRDB
import Testing

extension ScenarioRunTests {
    /// Three backends, `random` through a proxy on one event loop, 300 requests: the picker's choices in
    /// the order it made them are what the seed decides.
    static let randomChoices = """
        name: seeded-choices
        seed: 11
        duration: 1500ms
        repeats: 2
        algorithms: [random]
        backends: {count: 3, latency: 1ms}
        load: {clients: 10, total-rate: 200, arrival: constant}
        proxy: {threads: 1}
        """

    /// The backend of every request the proxy of run `id` picked for, in the order of its picks.
    static func choices(_ queue: DatabaseQueue, run id: Int64) async throws -> [Int] {
        try await queue.read { db in
            // Picks on one event loop in the same microsecond keep their order up to a swap; ordering
            // such a tie by backend makes it the same in both runs whichever way it fell.
            try Int.fetchAll(
                db,
                sql: "SELECT backend_id FROM proxy_requests WHERE run_id = ? AND backend_id IS NOT NULL ORDER BY picked_us, backend_id",
                arguments: [id]
            )
        }
    }

    /// The largest share of positions where `a` and `b` name the same backend, over shifts of up to two
    /// picks (the proxy's readiness check before the load may pick once more in one run than another).
    static func agreement(_ a: [Int], _ b: [Int]) -> Double {
        (-2...2).map { shift -> Double in
            let pairs = a.indices.compactMap { index -> Bool? in
                b.indices.contains(index + shift) ? a[index] == b[index + shift] : nil
            }
            return Double(pairs.filter { $0 }.count) / Double(max(1, pairs.count))
        }.max() ?? 0
    }

    @Test("the proxy's pickers are seeded from the run's seed: a repeat chooses otherwise, the same seed again alike")
    func pickerSeeds() async throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path("seeded-choices.yml")
        try Self.randomChoices.write(toFile: path, atomically: true, encoding: .utf8)
        var queues: [DatabaseQueue] = []
        for study in ["first", "again"] {
            let database = scratch.path("\(study).db")
            let run = try ChildProcess("lbctl", ["run", "--scenario", path, "--db", database, "--out", scratch.path("out-\(study)")])
            let result = await run.wait(timeout: .seconds(120))
            #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
            try Self.expectNothingLeft(harness: run.pid, database: database)
            queues.append(try DatabaseQueue(path: database))
        }
        let seeds = try await queues[0].read { db in try Int64.fetchAll(db, sql: "SELECT seed FROM runs ORDER BY id") }
        #expect(seeds == [11, 12], "repeat 1 runs with the scenario's seed moved by one")
        let first = try await Self.choices(queues[0], run: 1)
        let repeated = try await Self.choices(queues[0], run: 2)
        let again = try await Self.choices(queues[1], run: 1)
        #expect(first.count >= 280 && repeated.count >= 280 && again.count >= 280, "\(first.count), \(repeated.count), \(again.count)")
        #expect(Set(first) == [1, 2, 3])
        // Independent uniform choices over three backends agree at a position with probability 1/3: over
        // 280 positions, 93 ± 8 (one sd), so more than half agreeing is over 5 sd away. The same seed makes
        // the same choices, but for ties reordered and the readiness pick.
        let otherSeed = Self.agreement(first, repeated)
        let sameSeed = Self.agreement(first, again)
        #expect(otherSeed < 0.5, "repeat 1 chose like repeat 0: \(otherSeed) of the picks alike")
        #expect(sameSeed > 0.97, "the same seed chose otherwise: \(sameSeed) of the picks alike")
    }
}
