import Foundation
import LBCore
import Testing

@testable import LBLoad

@Suite("Load statistics and the summary")
struct LoadReportTests {
    /// Statistics of latencies 1 ms … 1000 ms (one each), every tenth one a 503, one timeout.
    func sampleStatistics(offset: Int = 0) -> LoadStatistics {
        var statistics = LoadStatistics()
        for ms in 1...1_000 {
            statistics.recordSend(lagMicros: 10, inWindow: ms <= 990)
            statistics.record(
                correctedMicros: Int64(ms + offset) * 1_000,
                serviceMicros: Int64(ms) * 500,
                status: ms % 10 == 0 ? 503 : 200,
                error: nil,
                backend: ms % 2 == 0 ? "b1" : "b2",
                bytes: 2
            )
        }
        statistics.record(correctedMicros: 5_000_000, serviceMicros: 5_000_000, status: nil, error: .timedOut, backend: nil, bytes: 0)
        return statistics
    }

    @Test("percentiles of corrected latency and service time within HdrHistogram's 3 significant digits")
    func percentiles() {
        let statistics = sampleStatistics()
        // 1001 values: 1..1000 ms and one 5 s timeout.
        for (p, expected) in [(50.0, 501_000.0), (90.0, 901_000.0), (99.0, 991_000.0)] {
            let value = Double(statistics.corrected.valueAtPercentile(p))
            #expect(abs(value / expected - 1) < 0.002, "p\(p) \(value)")
        }
        #expect(abs(Double(statistics.corrected.max) / 5_000_000 - 1) < 0.001)
        #expect(abs(Double(statistics.service.valueAtPercentile(50)) / 250_500 - 1) < 0.002)
    }

    @Test("counts: statuses, errors, failures, backends, sends in the window")
    func counts() {
        let statistics = sampleStatistics()
        #expect(statistics.statuses == [200: 900, 503: 100])
        #expect(statistics.errors == [.timedOut: 1])
        #expect(statistics.failed == 101)
        #expect(statistics.backends == ["b1": 500, "b2": 500])
        #expect(statistics.sent == 1_000 && statistics.sentInWindow == 990 && statistics.completed == 1_001)
    }

    @Test("two workers' statistics add up")
    func adding() {
        var total = sampleStatistics()
        total.add(sampleStatistics(offset: 1_000))
        #expect(total.completed == 2_002 && total.statuses == [200: 1_800, 503: 200])
        #expect(total.corrected.totalCount == 2_002)
        #expect(abs(Double(total.corrected.valueAtPercentile(50)) / 1_001_000 - 1) < 0.002)
    }

    @Test("the summary shows asked and achieved rate, errors, shares and the percentile table; JSON the same")
    func summary() throws {
        var configuration = LoadConfiguration(
            target: .init(host: "127.0.0.1", port: 8080, path: "/"),
            clients: 10,
            pacing: .openLoop(ratePerClient: 10, arrival: .poisson)
        )
        configuration.duration = .seconds(10)
        let report = LoadReport(
            configuration: configuration,
            statistics: sampleStatistics(),
            elapsed: .seconds(10),
            sendWindow: .seconds(10),
            requestsNumbered: 1_001,
            interrupted: false
        )
        #expect(report.achievedRate == 99)
        let text = report.text
        for expected in [
            "10 clients x 10 req/s = 100 req/s asked (poisson)", "achieved 99 req/s (99% of asked)",
            "200: 900  503: 100", "timeout: 1", "b1 50%  b2 50%", "p99.9", "p99.99", "max",
        ] {
            #expect(text.contains(expected), "missing \(expected) in\n\(text)")
        }
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report.json)) as! [String: Any]
        #expect(json["achievedRate"] as? Double == 99)
        #expect((json["statuses"] as? [String: Int]) == ["200": 900, "503": 100])
        let corrected = json["corrected"] as! [String: Double]
        #expect(abs(corrected["p99Ms"]! / 991 - 1) < 0.002)
    }
}
