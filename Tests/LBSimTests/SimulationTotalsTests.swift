import Foundation
import LBConfig
import LBCore
import LBStore
import Testing

@testable import LBSim

/// A simulated run without records stores totals instead of rows, and `lbctl report` reads from them
/// the figures it computes from the rows of the same run with records: the counts, shares, errors by
/// kind, retries, unevenness per second, keys moved and fault reactions exactly, the means exactly, the
/// percentiles to the histogram's resolution.
@Suite("simulator totals")
struct SimulationTotalsTests {
    /// Everything the totals count: errors and 503s, a timeout and retries, a backend killed and
    /// restarted (health checks), another added and one removed under keys.
    static let scenario = """
        name: totals
        seed: 11
        duration: 12s
        warmup: 2s
        algorithms: [round-robin, consistent-hash, least-connections]
        backends:
          - {name: b1, latency: exponential(3ms), capacity: 2, queue: 4, errors: 0.02}
          - {name: b2, latency: "lognormal(2ms,30ms)", capacity: 2, queue: 4}
          - {name: b3, latency: exponential(2ms)}
          - {name: b4, latency: exponential(2ms), in-service: false}
        load: {clients: 40, rate: 30, arrival: poisson, keys: {count: 300, zipf: 0.8}, timeout: 200ms}
        timeline:
          - {at: 4s, kill: b3}
          - {at: 6s, add: b4}
          - {at: 7s, restart: b3}
          - {at: 9s, remove: b1}
        proxy:
          hash-key: header:X-LBLab-Key
          timeouts: {connect: 200ms, response-header: 25ms}
          retries: {attempts: 2, on: [connect-failure, reset, response-timeout, 5xx], budget: {share: 1.0, min-concurrency: 50}}
          health: {type: http, path: /health, interval: 500ms, timeout: 100ms, rise: 2, fall: 2}
        sim: {delays: {client-proxy: 50us, proxy-backend: exponential(30us), proxy-client: 40us}}
        """

    static func report(algorithm: Int, keepsRecords: Bool, in database: ResultsDatabase, scenario text: String = Self.scenario) throws -> RunReport {
        let scenario = try Scenario.parse(text, file: "totals.yml")
        let entry = scenario.algorithms[algorithm]
        var info = RunInfo(kind: .sim)
        info.scenario = scenario.name
        info.algorithm = entry.label
        let recorder = try database.beginRun(info)
        var settings = SimulationSettings(scenario: scenario, seed: scenario.seed)
        settings.keepsRecords = keepsRecords
        var simulation = try Simulation(scenario: scenario, entry: entry, settings: settings, sink: recorder)
        let outcome = simulation.run()
        #expect((outcome.totals != nil) == !keepsRecords)
        if let totals = outcome.totals { try database.recordTotals(totals, runID: recorder.runID) }
        _ = try recorder.finish(status: .completed, durationMicros: outcome.virtualTime.nanoseconds / 1_000)
        return try database.report(runID: recorder.runID)
    }

    @Test("a run's report reads the same from its totals as from its rows", arguments: 0..<3)
    func sameReport(algorithm: Int) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-totals-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try ResultsDatabase.open(path: directory.appendingPathComponent("totals.db").path)
        defer { try? database.close() }
        let rows = try Self.report(algorithm: algorithm, keepsRecords: true, in: database)
        let totals = try Self.report(algorithm: algorithm, keepsRecords: false, in: database)
        #expect(try database.totals(runID: rows.run.id) == nil)
        #expect(rows.run.requestCount > 10_000 && totals.run.requestCount == 0 && totals.run.countedRequests == Int64(totals.requests))

        // The scenario exercises what it means to: errors of several kinds, retries, a fault reaction.
        #expect(rows.errorsByKind.count >= 2 && rows.errors > 50)
        #expect((rows.retriesPerRequest ?? 0) > 0.005)
        #expect(rows.ejectSeconds != nil && rows.readmitSeconds != nil)
        #expect(rows.imbalancePerSecond != nil)
        if algorithm == 1 { #expect(rows.remappedOnAdd != nil && rows.remappedOnRemove != nil) }

        #expect(totals.window == rows.window)
        #expect(totals.requests == rows.requests && totals.responses == rows.responses && totals.errors == rows.errors)
        #expect(totals.errorsByKind.map { "\($0.kind)=\($0.count)" } == rows.errorsByKind.map { "\($0.kind)=\($0.count)" })
        #expect(totals.throughput == rows.throughput)
        #expect(totals.backends == rows.backends)
        #expect(totals.imbalance == rows.imbalance && totals.coefficientOfVariation == rows.coefficientOfVariation && totals.jainIndex == rows.jainIndex)
        #expect(totals.imbalancePerSecond == rows.imbalancePerSecond)
        #expect(totals.retriesPerRequest == rows.retriesPerRequest && totals.proxyRequests == rows.proxyRequests)
        #expect(totals.ejectSeconds == rows.ejectSeconds && totals.readmitSeconds == rows.readmitSeconds)
        #expect(totals.remappedOnAdd == rows.remappedOnAdd && totals.remappedOnRemove == rows.remappedOnRemove)
        for (fromTotals, fromRows) in [(totals.corrected, rows.corrected), (totals.service, rows.service)] {
            #expect(fromTotals.mean == fromRows.mean)
            #expect(fromTotals.max == fromRows.max)
            // A histogram of 3 significant digits gives the top of the bucket that holds the value: at
            // most 1/1024 above it (2048 sub-buckets over each doubling, half of them per bucket).
            for (a, b) in [(fromTotals.p50, fromRows.p50), (fromTotals.p90, fromRows.p90), (fromTotals.p99, fromRows.p99), (fromTotals.p999, fromRows.p999)] {
                let value = try #require(a), exact = try #require(b)
                #expect(value >= exact && Double(value - exact) <= Double(exact) / 1_024 + 1, "\(value) vs \(exact)")
            }
        }
    }

    @Test("the unevenness per second reads the same from totals when requests stay in flight for seconds")
    func longRequests() throws {
        // Every fourth request takes 4.5 s: about six seconds are open at once, so the totals' ring of
        // open seconds grows and wraps while they are counted.
        let text = """
            name: long
            seed: 5
            duration: 20s
            warmup: 1s
            algorithms: [round-robin]
            backends:
              - {name: slow, latency: 4500ms}
              - {name: b2, latency: exponential(2ms)}
              - {name: b3, latency: exponential(2ms)}
              - {name: b4, latency: exponential(3ms)}
            load: {clients: 20, rate: 10, arrival: poisson, timeout: 10s}
            """
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-totals-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try ResultsDatabase.open(path: directory.appendingPathComponent("long.db").path)
        defer { try? database.close() }
        let rows = try Self.report(algorithm: 0, keepsRecords: true, in: database, scenario: text)
        let totals = try Self.report(algorithm: 0, keepsRecords: false, in: database, scenario: text)
        let slow = try #require(rows.corrected.max)
        #expect(slow >= 4_500_000)
        #expect(rows.imbalancePerSecond != nil)
        #expect(totals.imbalancePerSecond == rows.imbalancePerSecond)
        #expect(totals.requests == rows.requests && totals.backends == rows.backends)
    }
}
