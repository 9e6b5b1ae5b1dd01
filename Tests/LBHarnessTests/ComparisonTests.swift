import Foundation
import GRDB
import LBConfig
import LBExperiment
import LBHarness
import Testing

/// Repeats compared with confidence: every algorithm's repeat k draws the same arrivals and keys, the
/// comparison pairs runs by seed, and `expect: … with confidence` is judged on the paired interval.
@Suite("comparison over repeats")
struct ComparisonTests {
    /// Four single-server backends at ρ = 0.8 (exponential 10 ms, 320 requests a second): round robin
    /// leaves a backend's queue to chance, least-connections sends to an idle one when there is one,
    /// so its p99 is far lower in every repeat.
    static let scenario = """
        name: paired
        seed: 3
        duration: 20s
        warmup: 2s
        repeats: 4
        algorithms: [round-robin, least-connections]
        backends: {count: 4, latency: exponential(10ms), capacity: 1}
        load: {clients: 40, rate: 8, arrival: poisson, keys: {count: 50, zipf: 1}}
        expect:
          - p99(least-connections) < p99(round-robin) with confidence
          - p99(round-robin) < 0.5 * p99(least-connections) with 99% confidence
          - p99(least-connections) < p99(round-robin)
        """

    static func study(repeats: Int? = nil) async throws -> (StudyResult, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-comparison-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("paired.db").path
        var settings = SimStudySettings(databasePath: path, version: "test")
        settings.repeats = repeats
        let study = SimStudy(scenario: try Scenario.parse(Self.scenario, file: "paired.yml"), settings: settings)
        return (try await study.run(line: { _ in }, status: { _ in }), path)
    }

    @Test("repeat k of every algorithm draws the same arrivals, clients and keys; repeats differ")
    func sameDrawsAcrossAlgorithms() async throws {
        let (_, path) = try await Self.study()
        let queue = try DatabaseQueue(path: path)
        let draws = try await queue.read { db in
            try Row.fetchAll(db, sql: "SELECT id, algorithm, repeat, seed FROM runs ORDER BY id").map { run in
                let rows = try Row.fetchAll(
                    db, sql: "SELECT intended_us, client_ip, key FROM requests WHERE run_id = ? ORDER BY id", arguments: [run["id"] as Int64]
                )
                let signature = rows.map { "\($0["intended_us"] as Int64) \($0["client_ip"] as String) \(($0["key"] as Int?) ?? -1)" }
                return (algorithm: run["algorithm"] as String, repeatIndex: run["repeat"] as Int, seed: run["seed"] as Int64, signature: signature)
            }
        }
        #expect(draws.count == 8)
        for repeatIndex in 0..<4 {
            let pair = draws.filter { $0.repeatIndex == repeatIndex }
            #expect(pair.map(\.algorithm) == ["round-robin", "least-connections"])
            #expect(pair[0].seed == 3 + Int64(repeatIndex) && pair[1].seed == pair[0].seed)
            #expect(pair[0].signature.count > 5_000 && pair[0].signature == pair[1].signature, "repeat \(repeatIndex)")
        }
        #expect(draws[0].signature != draws[2].signature)
    }

    @Test("intervals hold their means; the paired difference of p99 leaves zero out; verdicts name their test")
    func confidence() async throws {
        let (result, _) = try await Self.study()
        let comparison = result.comparison
        for label in ["round-robin", "least-connections"] {
            let interval = try #require(comparison.interval(.p99, label))
            #expect(interval.sampleSize == 4 && interval.low <= interval.mean && interval.mean <= interval.high)
            #expect(abs(interval.mean - comparison.mean(.p99, label)!) < 1e-9)
        }
        let difference = try #require(comparison.difference(.p99, "round-robin", "least-connections"))
        #expect(difference.sampleSize == 4 && difference.low > 0, "\(difference)")
        // The same runs give the same intervals.
        #expect(comparison.difference(.p99, "round-robin", "least-connections") == difference)
        let verdicts = result.verdicts
        #expect(verdicts.map(\.holds) == [true, false, true], "\(verdicts.map(\.explanation))")
        #expect(verdicts[0].explanation.contains("paired over 4 repeats, BCa bootstrap 95% interval"))
        #expect(verdicts[1].explanation.contains("BCa bootstrap 99% interval"))
        #expect(verdicts[2].explanation.contains("means over 4 runs compared, significance not judged"))
        let text = comparison.statisticsText()
        #expect(text.contains("p99") && text.contains("round-robin - least-connections") && text.contains("yes"))
    }

    @Test("with one run of each, a difference asked with confidence cannot be judged, and says so")
    func oneRepeat() async throws {
        let (result, _) = try await Self.study(repeats: 1)
        #expect(result.verdicts.map(\.holds) == [nil, nil, true])
        #expect(result.verdicts[0].explanation.contains("cannot judge significance: 1 paired run"))
        #expect(result.verdicts[2].explanation.contains("one run each"))
        #expect(!result.succeeded)
        #expect(result.comparison.statisticsText().hasPrefix("one run of each algorithm: no confidence intervals"))
    }
}
