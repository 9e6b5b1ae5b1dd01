import Foundation
import GRDB
import LBConfig
import LBHarness
import LBStore
import Testing

/// A sweep in virtual time: a capacity probe first when the load is a share of capacity, then every
/// point × algorithm × repeat, each run recorded with its point; the comparison by point.
@Suite("sweeps in the simulator")
struct SweepStudyTests {
    /// Four single-server backends of mean service 10 ms: 400 requests a second at most.
    static let scenario = """
        name: swept
        seed: 9
        duration: 20s
        warmup: 4s
        repeats: 2
        algorithms: [round-robin, least-connections]
        backends: {count: 4, latency: exponential(10ms), capacity: 1}
        load: {clients: 40, total-rate: 100, arrival: poisson}
        sweep:
          load.total-rate: {from: 0.5c, to: 0.9c, step: 0.4c}
        expect:
          - p99(least-connections) < p99(round-robin)
        """

    @Test("the probe measures the fleet's capacity; each point's rate is its share of it; runs, grid and verdicts go by point")
    func probeAndPoints() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-sweep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("swept.db").path
        let scenario = try Scenario.parse(Self.scenario, file: "swept.yml")
        let lines = LineLog()
        let result = try await SimStudy(scenario: scenario, settings: SimStudySettings(databasePath: path, version: "test")).run(
            line: { lines.append($0) }, status: { _ in }
        )
        #expect(result.outcomes.count == 8 && result.outcomes.allSatisfy { $0.status == .completed })
        let texts = try await DatabaseQueue(path: path).read { db in
            try String.fetchAll(db, sql: "SELECT params_json FROM runs ORDER BY id")
        }
        let runs = try texts.map { text in Decoded(params: try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])) }
        // One probe, of least-connections, at 1.25 × the settings' 400/s: saturated at once.
        #expect(runs.count == 9)
        #expect(runs[0].params["probe"] as? String == "capacity" && (runs[0].params["offered"] as? Double).map { abs($0 - 500) < 1e-6 } == true)
        #expect(runs[0].params["algorithm"] as? String == "least-connections")
        // Saturated departures over the probe's 15 s window are Poisson at 400/s: sd 5.2/s; four sd.
        let capacity = try #require(runs[1].params["capacity"] as? Double)
        #expect(abs(capacity - 400) < 21, "capacity \(capacity)")
        #expect(lines.all.first?.hasPrefix("capacity probe (run 1): offered 500.0 req/s, served") == true)
        for (offset, run) in runs.dropFirst().enumerated() {
            let share = offset < 4 ? 0.5 : 0.9
            #expect(run.params["point"] as? Int == offset / 4)
            #expect((run.params["sweep"] as? [String: String]) == ["load.total-rate": offset < 4 ? "0.5c" : "0.9c"])
            #expect(abs((run.params["total_rate"] as? Double ?? 0) - share * capacity) < 1e-6)
        }
        let comparison = result.comparison
        #expect(comparison.points == ["load.total-rate=0.5c", "load.total-rate=0.9c"])
        #expect(comparison.groups.count == 4 && comparison.groups.allSatisfy { $0.reports.count == 2 })
        // Queues grow toward saturation: round robin's p99 at 0.9c is far above its p99 at 0.5c.
        let low = try #require(comparison.mean(.p99, "round-robin", point: "load.total-rate=0.5c"))
        let high = try #require(comparison.mean(.p99, "round-robin", point: "load.total-rate=0.9c"))
        #expect(high > 2 * low)
        #expect(comparison.grid(.p99).contains("load.total-rate=0.9c"))
        #expect(result.verdicts.count == 1 && result.verdicts[0].holds == true)
        #expect(result.verdicts[0].explanation.hasPrefix("judged at each of 2 points"))
        // The export carries each point's parameters as columns.
        let exported = directory.appendingPathComponent("csv").path
        _ = try ResultsDatabase.open(path: path).exportCSV(to: exported)
        let csv = try String(contentsOfFile: exported + "/runs.csv", encoding: .utf8)
        let header = try #require(csv.split(separator: "\r\n").first)
        #expect(header.hasSuffix(",point,point_label,capacity,sweep.load.total-rate"))
        #expect(csv.contains(",0,load.total-rate=0.5c,\(capacity),0.5c\r\n") && csv.contains(",1,load.total-rate=0.9c,\(capacity),0.9c\r\n"))
    }

    @Test("a service-level search bisects between the sweep's points; knees and throughputs at the service level feed expect")
    func serviceLevel() async throws {
        let text = Self.scenario
            .replacingOccurrences(of: "repeats: 2", with: "repeats: 1")
            .replacingOccurrences(of: "{from: 0.5c, to: 0.9c, step: 0.4c}", with: "{from: 0.3c, to: 1.1c, step: 0.2c}")
            .replacingOccurrences(of: "expect:\n  - p99(least-connections) < p99(round-robin)", with: """
                slo: {p99: 100ms}
                expect:
                  - slo-throughput(least-connections) > slo-throughput(round-robin)
                  - knee(round-robin) > 0
                """)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-slo-\(UUID().uuidString).db").path
        let lines = LineLog()
        let result = try await SimStudy(scenario: try Scenario.parse(text, file: "swept.yml"), settings: SimStudySettings(databasePath: path, version: "test")).run(
            line: { lines.append($0) }, status: { _ in }
        )
        let comparison = result.comparison
        #expect(comparison.points.count == 5 && comparison.axis == "load.total-rate")
        for label in ["round-robin", "least-connections"] {
            let searched = try #require(comparison.searches[label])
            #expect(searched.count >= 3 && searched.count <= 8, "\(label): \(searched.count) search runs")
            guard case .interpolated(let value, let low, let high)? = comparison.serviceLevelThroughput(label) else {
                Issue.record("\(label): \(String(describing: comparison.serviceLevelThroughput(label)))")
                continue
            }
            // Bisection stops within half a percent, or after eight steps of a 0.2c (about 80/s) bracket.
            #expect(high - low <= max(0.005 * high, 80 / 256 + 1e-9) && low <= value && value <= high)
            #expect(comparison.knee(label) != nil)
        }
        #expect(lines.all.contains { $0.hasPrefix("slo search round-robin: ") })
        #expect(result.verdicts.map(\.holds) == [true, true], "\(result.verdicts.map(\.explanation))")
        #expect(comparison.sweepFiguresText().contains("throughput at the service level (p99 <= 100ms, error-rate <= 0.01)"))
    }

    @Test("a share of capacity needs backends whose rate is bounded")
    func unboundedFleet() async throws {
        let text = Self.scenario.replacingOccurrences(of: ", capacity: 1}", with: "}")
        let scenario = try Scenario.parse(text, file: "swept.yml")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-sweep-\(UUID().uuidString).db").path
        await #expect {
            _ = try await SimStudy(scenario: scenario, settings: SimStudySettings(databasePath: path, version: "test")).run(line: { _ in }, status: { _ in })
        } throws: { error in
            "\(error)".contains("needs a fleet whose rate is bounded")
        }
    }
}

/// Lines a study printed, kept for the test.
final class LineLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) {
        self.lock.withLock { self.lines.append(line) }
    }

    var all: [String] { self.lock.withLock { self.lines } }
}

/// A run's decoded `params_json`.
struct Decoded {
    var params: [String: Any]
}
