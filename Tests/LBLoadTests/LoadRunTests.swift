import Foundation
import GRDB
import LBBackend
import LBCore
import LBTesting
import Testing

@testable import LBStore

@testable import LBLoad

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The load generator against an in-process synthetic backend on loopback.
@Suite("Load generator on loopback", .serialized)
struct LoadRunTests {
    func target(_ address: HostPort) -> LoadConfiguration.Target {
        LoadConfiguration.Target(host: address.host, port: address.port, path: "/")
    }

    @Test("open loop: every request is a row, the rate is the one asked, each client has its own TEST-NET address")
    func rowsAndRate() async throws {
        try await withSyntheticBackend({ $0.settings.latency = .fixed(.milliseconds(2)) }) { address in
            var configuration = LoadConfiguration(
                target: target(address),
                clients: 30,
                pacing: .openLoop(ratePerClient: 20, arrival: .constant)
            )
            configuration.duration = .seconds(2)
            let database = try ResultsDatabase.inMemory()
            let recorder = try database.beginRun(RunInfo(kind: .loadgen))
            let report = try await LoadRun(configuration: configuration, sink: recorder).run()
            try recorder.finish(status: .completed, durationMicros: report.elapsed.nanoseconds / 1_000)

            // A constant schedule of 30 clients × 20 req/s × 2 s is exactly 1,200 requests.
            #expect(report.statistics.sent == 1_200)
            #expect(report.statistics.completed == 1_200)
            #expect(report.statistics.statuses == [200: 1_200])
            #expect(abs(report.achievedRate / 600 - 1) < 0.01, "achieved \(report.achievedRate) req/s")
            let (rows, ips, backends) = try database.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM requests")!,
                    try String.fetchAll(db, sql: "SELECT DISTINCT client_ip FROM requests"),
                    try String.fetchAll(db, sql: "SELECT name FROM backends")
                )
            }
            #expect(rows == report.statistics.sent)
            #expect(ips.count == 30)
            #expect(ips.allSatisfy(ClientAddresses.contains))
            #expect(backends == ["b1"])
        }
    }

    @Test("a 1 s stall shows in corrected latency and not in service time")
    func stallShowsInCorrectedLatency() async throws {
        try await withSyntheticBackend({ $0.settings.latency = .fixed(.milliseconds(1)) }) { address in
            var configuration = LoadConfiguration(
                target: target(address),
                clients: 10,
                pacing: .openLoop(ratePerClient: 20, arrival: .constant)
            )
            configuration.duration = .seconds(3)
            configuration.maxConnections = 2
            let control = URL(string: "http://127.0.0.1:\(address.port)\(BackendConfiguration.controlPath)")!
            let stall = Task {
                // One second in, the backend takes 1 s per request for 50 ms: the two connections are
                // held for a second, and the requests due meanwhile wait for them.
                try await Task.sleep(for: .seconds(1))
                try await Self.post(control, #"{"latency": "1s"}"#)
                try await Task.sleep(for: .milliseconds(50))
                try await Self.post(control, #"{"latency": "1ms"}"#)
            }
            let report = try await LoadRun(configuration: configuration, sink: nil).run()
            try await stall.value
            let corrected = report.statistics.corrected
            let service = report.statistics.service
            #expect(report.statistics.completed == 600)
            // About 200 requests are due during the stall and wait up to ~1 s each: well over the top
            // decile of the 600. Their service time is the backend's 1 ms.
            #expect(corrected.max >= 900_000, "corrected max \(corrected.max) µs")
            #expect(corrected.valueAtPercentile(90) >= 300_000, "corrected p90 \(corrected.valueAtPercentile(90)) µs")
            #expect(service.valueAtPercentile(90) < 50_000, "service p90 \(service.valueAtPercentile(90)) µs")
            #expect(report.statistics.waitedForConnection > 100)
        }
    }

    @Test("closed loop keeps its connections busy and counts from the send")
    func closedLoop() async throws {
        try await withSyntheticBackend { address in
            var configuration = LoadConfiguration(target: target(address), clients: 4, pacing: .closedLoop(connections: 4))
            configuration.duration = .seconds(20)  // a cap: the 2,000 requests end the run
            configuration.requests = 2_000
            let sink = InMemoryRecordSink()
            let report = try await LoadRun(configuration: configuration, sink: sink).run()
            #expect(report.statistics.sent == 2_000)
            #expect(sink.snapshot.requests.count == 2_000)
            #expect(report.statistics.peakConnections == 4)
            // In a closed loop a request is due when it is sent: the gap is the time to write it, under a
            // millisecond unless the thread was preempted in between (which a busy test machine does to a
            // few), and never the seconds of lag a schedule fixed in advance would build up.
            let gaps = sink.snapshot.requests.map { $0.sentMicros - $0.intendedMicros }
            #expect(gaps.count { $0 < 1_000 } >= 1_980, "gaps of a millisecond or more: \(gaps.filter { $0 >= 1_000 })")
            #expect(gaps.allSatisfy { $0 >= 0 && $0 < 100_000 })
        }
    }

    @Test("interrupting keeps a record of every request, the ones in flight as interrupted")
    func interrupt() async throws {
        try await withSyntheticBackend({ $0.settings.latency = .fixed(.milliseconds(200)) }) { address in
            var configuration = LoadConfiguration(
                target: target(address),
                clients: 20,
                pacing: .openLoop(ratePerClient: 50, arrival: .poisson)
            )
            configuration.duration = .seconds(30)
            let sink = InMemoryRecordSink()
            let run = LoadRun(configuration: configuration, sink: sink)
            Task {
                try await Task.sleep(for: .seconds(1))
                run.interrupt()
            }
            let clock = ContinuousClock()
            let start = clock.now
            let report = try await run.run()
            #expect(clock.now - start < .seconds(3))
            #expect(report.interrupted)
            let records = sink.snapshot.requests
            #expect(records.count == report.statistics.completed)
            #expect(Set(records.map(\.id)).count == records.count)
            let interrupted = records.filter { $0.error == .interrupted }.count
            // About 1000 req/s × 200 ms are in flight when it stops.
            #expect(interrupted > 50, "\(interrupted) interrupted")
            #expect(report.statistics.errors[.interrupted] == interrupted)
        }
    }

    @Test("Zipf keys go out in X-LBLab-Key, and the target's path and headers as given")
    func keysAndHeaders() async throws {
        try await withSyntheticBackend { address in
            var configuration = LoadConfiguration(
                target: LoadConfiguration.Target(host: address.host, port: address.port, path: "/x?y=1"),
                clients: 2,
                pacing: .openLoop(ratePerClient: 100, arrival: .constant)
            )
            configuration.requests = 50
            configuration.keys = ZipfKeys(count: 10, exponent: 1)
            configuration.method = "POST"
            configuration.body = Array("hello".utf8)
            configuration.headers = [("X-Test", "1")]
            let report = try await LoadRun(configuration: configuration, sink: nil).run()
            #expect(report.statistics.statuses == [200: 50])
        }
    }

    @Test("a request slower than the timeout ends as timed out, between 1 and 1.1 timeouts after it was sent")
    func timeout() async throws {
        try await withSyntheticBackend({ $0.settings.latency = .fixed(.seconds(2)) }) { address in
            var configuration = LoadConfiguration(
                target: target(address),
                clients: 2,
                pacing: .openLoop(ratePerClient: 10, arrival: .constant)
            )
            configuration.requests = 6
            configuration.timeout = .milliseconds(200)
            let sink = InMemoryRecordSink()
            let report = try await LoadRun(configuration: configuration, sink: sink).run()
            #expect(report.statistics.errors == [.timedOut: 6])
            for record in sink.snapshot.requests {
                #expect(record.error == .timedOut && record.status == nil)
                let waited = record.doneMicros - record.sentMicros
                #expect(waited >= 200_000 && waited < 260_000, "timed out after \(waited) µs")
            }
        }
    }

    @Test("an unreachable target is one clear error before any load")
    func unreachable() async throws {
        let configuration = LoadConfiguration(
            target: LoadConfiguration.Target(host: "127.0.0.1", port: 1, path: "/"),
            clients: 1,
            pacing: .openLoop(ratePerClient: 1, arrival: .constant)
        )
        await #expect(throws: LoadError.self) { try await LoadRun(configuration: configuration, sink: nil).run() }
    }

    static func post(_ url: URL, _ json: String) async throws {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = Data(json.utf8)
        _ = try await URLSession.shared.data(for: request)
    }
}
