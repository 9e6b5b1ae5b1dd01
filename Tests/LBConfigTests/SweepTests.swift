import Foundation
import LBConfig
import LBCore
import Testing

/// `sweep:`: fields and their values, combined into points, each point the scenario read again with
/// its values in place.
@Suite("scenario sweeps")
struct SweepTests {
    static let base = """
        name: s
        duration: 10s
        algorithms: [round-robin, least-connections]
        backends: {count: 4, latency: exponential(10ms), capacity: 1}
        load: {clients: 40, total-rate: 200}
        proxy: {retries: {attempts: 2}}

        """

    static func scenario(_ sweep: String, base: String = Self.base) throws -> Scenario {
        try Scenario.parse(base + sweep, file: "s.yml")
    }

    @Test("lists and ranges, crossed (the last field fastest) or zipped, each point the scenario with its values")
    func points() throws {
        let crossed = try Self.scenario("""
            sweep:
              backends.count: [4, 16]
              load.total-rate: {from: 100, to: 300, step: 100}
            """)
        let points = try #require(crossed.sweep).points
        #expect(points.map(\.description) == [
            "backends.count=4 load.total-rate=100", "backends.count=4 load.total-rate=200", "backends.count=4 load.total-rate=300",
            "backends.count=16 load.total-rate=100", "backends.count=16 load.total-rate=200", "backends.count=16 load.total-rate=300",
        ])
        let last = try crossed.at(points[5], capacity: nil)
        #expect(last.backends.count == 16 && last.load.totalRate == 300 && last.point == points[5])
        #expect(last.text == crossed.text, "a point's runs record the scenario as written")
        let zipped = try Self.scenario("""
            sweep:
              combine: zip
              load.clients: [10, 20, 40]
              load.total-rate: {from: 100, to: 400, count: 3}
            """)
        #expect(try #require(zipped.sweep).points.map(\.description) == [
            "load.clients=10 load.total-rate=100", "load.clients=20 load.total-rate=250", "load.clients=40 load.total-rate=400",
        ])
        let geometric = try Self.scenario("sweep: {backends.count: {from: 4, to: 256, factor: 4}}")
        #expect(try #require(geometric.sweep).points.map { $0.values[0].value.description } == ["4", "16", "64", "256"])
        // Decimal steps read as written, without binary fractions.
        let decimal = try Self.scenario("sweep: {load.total-rate: {from: 0.3c, to: 1.1c, step: 0.1c}}")
        #expect(try #require(decimal.sweep).points.map { $0.values[0].value.description } == ["0.3c", "0.4c", "0.5c", "0.6c", "0.7c", "0.8c", "0.9c", "1c", "1.1c"])
    }

    @Test("any field: a backend's latency in a list, a proxy setting, a key the scenario lacks, a timeline step's time")
    func fields() throws {
        let listed = """
            name: s
            duration: 10s
            algorithms: [round-robin]
            backends:
              - {name: a, latency: 1ms, weight: 1}
              - {name: b, latency: 2ms, weight: 1}
            load: {clients: 4, rate: 10}
            proxy: {retries: {attempts: 2}}
            timeline:
              - {at: 5s, slow: {backend: b, latency: 20ms}}

            """
        let scenario = try Self.scenario("""
            sweep:
              combine: zip
              backends[1].latency: [5ms, exponential(8ms)]
              backends[0].weight: [2, 4]
              proxy.retries.attempts: [1, 3]
              load.timeout: [2s, 3s]
              timeline[0].at: [3s, 7s]
            """, base: listed)
        let points = try #require(scenario.sweep).points
        let second = try scenario.at(points[1], capacity: nil)
        #expect(second.backends[1].latency == .exponential(mean: .milliseconds(8)) && second.backends[0].latency == .fixed(.milliseconds(1)))
        #expect(second.backends[0].weight == 4 && second.load.timeout == .seconds(3) && second.timeline[0].at == .seconds(7))
        #expect(second.proxy.serviceYAML.contains("attempts: 3"))
        let first = try scenario.at(points[0], capacity: nil)
        #expect(first.backends[1].latency == .fixed(.milliseconds(5)) && first.proxy.serviceYAML.contains("attempts: 1"))
    }

    @Test("shares of capacity become the total rate, or each client's, of a measured capacity")
    func capacityShares() throws {
        let scenario = try Self.scenario("sweep: {load.total-rate: [0.5c, 1.1c]}")
        let sweep = try #require(scenario.sweep)
        #expect(sweep.needsCapacity)
        let half = try scenario.at(sweep.points[0], capacity: 360)
        #expect(half.load.totalRate == 180 && half.capacity == 360)
        #expect(abs(try scenario.at(sweep.points[1], capacity: 360).load.totalRate - 396) < 1e-9)
        #expect(throws: ConfigError.self) { try scenario.at(sweep.points[0], capacity: nil) }
        let perClient = try Self.scenario("sweep: {load.rate: [0.5c]}", base: Self.base.replacingOccurrences(of: "total-rate: 200", with: "rate: 5"))
        let point = try perClient.at(try #require(perClient.sweep).points[0], capacity: 400)
        #expect(point.load.ratePerClient == 5 && point.load.totalRate == 200)
    }

    @Test("slo: one percentile's target and an error rate; a sweep's figures need a sweep of one field, of the load for slo-throughput")
    func serviceLevel() throws {
        let scenario = try Self.scenario("""
            sweep: {load.total-rate: [100, 200, 300]}
            slo: {p99: 50ms}
            expect:
              - slo-throughput(least-connections) > 1.1 * slo-throughput(round-robin)
              - knee(least-connections) >= knee(round-robin)
            """)
        #expect(scenario.serviceLevel == ServiceLevel(metric: .p99, target: .milliseconds(50), errorRate: 0.01))
        #expect(scenario.expectations.count == 2)
        for (text, line, problem) in [
            ("slo: {p99: 50ms}\nexpect: [knee(round-robin) > 1]\n", 8, "this scenario has no sweep"),
            ("sweep: {backends.count: [2, 4]}\nslo: {p99: 50ms}\nexpect: [slo-throughput(round-robin) > 1]\n", 9, "needs a sweep of the load"),
            ("sweep: {load.total-rate: [1, 2]}\nexpect: [slo-throughput(round-robin) > 1]\n", 8, "needs the scenario's slo:"),
            ("sweep: {load.total-rate: [1, 2]}\nexpect: [knee(round-robin) > p99(round-robin)]\n", 8, "cannot be compared with each run's"),
            ("sweep: {load.total-rate: [1, 2]}\nexpect: [knee(round-robin) > knee(least-connections) with confidence]\n", 8, "does not apply"),
            ("slo: {p99: 50ms, p90: 10ms}\n", 7, "give one latency percentile's target"),
            ("slo: {p99: 50}\n", 7, "needs a unit"),
        ] {
            Self.expectMistake(text, line: line, problem: problem)
        }
    }

    /// Reading the base scenario with `text` after it fails at `line`, saying `problem`.
    static func expectMistake(_ text: String, line: Int, problem: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(sourceLocation: sourceLocation) {
            try Self.scenario(text)
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.line == line && "\(error)".contains(problem)
        }
    }

    @Test("mistakes name the sweep's line and what is wrong", arguments: [
        ("sweep: {load.nope.x: [1]}", 7, "no nope here"),
        ("sweep:\n  backends[2].latency: [1ms]\n", 8, "[2] needs a list here (the scenario has a mapping there)"),
        ("sweep: {algorithms: [random]}", 7, "algorithms is not swept"),
        ("sweep:\n  backends.count: [4, 0]\n", 8, "backends.count"),
        ("sweep: {load.clients: 5c}", 7, "for load.total-rate or load.rate only"),
        ("sweep: {combine: zip, load.clients: [1, 2], load.total-rate: [1]}", 7, "they have 2, 1 values"),
        ("sweep: {load.total-rate: {from: 1, to: 5, step: 1, factor: 2}}", 7, "give one of step, factor or count"),
        ("sweep: {load.total-rate: {from: 0.3c, to: 500}}", 7, "both be shares of capacity"),
        ("sweep: {combine: both, load.clients: [1]}", 7, "combine"),
        ("sweep: {}", 7, "name at least one field"),
    ])
    func mistakes(sweep: String, line: Int, problem: String) {
        Self.expectMistake(sweep, line: line, problem: problem)
    }
}
