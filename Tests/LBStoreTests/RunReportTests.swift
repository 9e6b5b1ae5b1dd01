import Foundation
import LBCore
import LBStore
import Testing

@Suite("run reports")
struct RunReportTests {
    /// A run of known rows: 200 requests in the window (100 µs, 200 µs, … 20 ms of corrected latency),
    /// 10 of them failed, served by three backends 100 / 60 / 30 (plus the failures), a spare backend
    /// that joined later, a kill and a restart with the proxy's reactions, and a key per request whose
    /// backend changes for a quarter of the keys at an `add`.
    static func sampleRun(moreEvents: [(Int64, String, String)] = []) throws -> (ResultsDatabase, Int64) {
        let database = try ResultsDatabase.inMemory()
        var info = RunInfo(kind: .real)
        info.algorithm = "round-robin"
        info.paramsJSON = #"{"host_cpus": 2}"#
        let recorder = try database.beginRun(info)
        try recorder.recordNow([
            BackendRecord(id: 1, name: "b1", specJSON: #"{"in_service": true}"#),
            BackendRecord(id: 2, name: "b2", specJSON: #"{"in_service": true}"#),
            BackendRecord(id: 3, name: "b3", specJSON: #"{"in_service": true}"#),
            BackendRecord(id: 4, name: "spare", specJSON: #"{"in_service": false}"#),
        ])
        for (t, subject) in [(0, "setup"), (1_000_000, "load"), (2_000_000, "measure"), (12_000_000, "drain")] {
            recorder.record(RunEvent(tMicros: Int64(t), kind: "phase", subject: subject))
        }
        for (t, kind, subject) in [(4_000_000, "kill", "b2"), (4_600_000, "health_down", "b2"), (8_000_000, "restart", "b2"), (9_250_000, "health_up", "b2"), (7_000_000, "add", "spare")] {
            recorder.record(RunEvent(tMicros: Int64(t), kind: kind, subject: subject))
        }
        for (t, kind, subject) in moreEvents { recorder.record(RunEvent(tMicros: t, kind: kind, subject: subject)) }
        // Warm-up requests, which the report leaves out.
        for id in 0..<50 {
            recorder.record(RequestRecord(id: Int64(id), clientID: 0, clientIP: "203.0.113.1", intendedMicros: 1_500_000, sentMicros: 1_500_000, firstByteMicros: nil, doneMicros: 1_900_000, status: 200, backendID: 1, bytesIn: 2, bytesOut: 0, error: nil))
        }
        for index in 0..<200 {
            let intended = Int64(2_000_000 + index * 50_000)  // 2 s to 12 s
            let failed = index % 20 == 19
            // Keys 0..<40, five requests each: the first two and a half before the add at 7 s. After it,
            // keys 0..<10 move from b1 to b3.
            let key = index % 40
            let backend = Self.backend(for: index)
            recorder.record(
                RequestRecord(
                    id: Int64(100 + index), clientID: Int32(index % 5), clientIP: "203.0.113.\(index % 5 + 1)", intendedMicros: intended,
                    sentMicros: intended + 50, firstByteMicros: nil, doneMicros: intended + Int64(index + 1) * 100,
                    status: failed ? nil : (index == 0 ? 503 : 200), backendID: backend, bytesIn: 2, bytesOut: 0,
                    error: failed ? .connectFailed : nil, key: key
                )
            )
        }
        for (t, steal) in [(2_000_000, 1_000_000), (12_000_000, 3_000_000)] {
            recorder.record(ResourceSample(tMicros: Int64(t), source: "host", cpuUsageMicros: 0, cpuThrottledMicros: Int64(steal)))
        }
        try recorder.finish(status: .completed, durationMicros: 13_000_000)
        return (database, recorder.runID)
    }

    /// The backend of request `index` of the sample run (`nil`: it failed).
    static func backend(for index: Int) -> Int? {
        let key = index % 40
        guard index % 20 != 19 else { return nil }
        return index < 100 ? (key < 20 ? 1 : 2) : (key < 10 ? 3 : key < 20 ? 1 : key < 30 ? 2 : [1, 2, 3][index % 3])
    }

    @Test("counts, percentiles by nearest rank, errors by kind and throughput over the measured window")
    func figures() throws {
        let (database, id) = try Self.sampleRun()
        let report = try database.report(runID: id)
        #expect(report.window == 2_000_000...12_000_000)
        #expect(report.requests == 200 && report.responses == 190)
        #expect(report.errors == 11, "10 connect failures and one 503")
        #expect(report.errorsByKind.map(\.kind) == ["connect", "status 503"] && report.errorsByKind.map(\.count) == [10, 1])
        #expect(abs(report.throughput - 19) < 1e-9, "190 responses in 10 s")
        // Responses have corrected latencies 100 µs × (index + 1) for the 190 indices not ≡ 19 (mod 20).
        let latencies = (0..<200).filter { $0 % 20 != 19 }.map { Int64($0 + 1) * 100 }.sorted()
        func rank(_ p: Double) -> Int64 { latencies[Int((Double(latencies.count) * p / 100).rounded(.up)) - 1] }
        #expect(report.corrected.p50 == rank(50) && report.corrected.p90 == rank(90) && report.corrected.p99 == rank(99))
        #expect(report.corrected.p999 == latencies.last && report.corrected.max == latencies.last)
        #expect(report.service.p50 == rank(50) - 50, "service time starts 50 µs later")
        #expect(abs(report.corrected.mean! - Double(latencies.reduce(0, +)) / 190) < 1e-6)
    }

    @Test("second by second from the load's start: requests by due second, errors, shares, events")
    func seconds() throws {
        let (database, id) = try Self.sampleRun()
        let run = try database.seconds(runID: id)
        #expect(run.backends.map(\.name) == ["b1", "b2", "b3", "spare"])
        // The load starts at 1 s; the 50 warm-up requests are due at 1.5 s, then one every 50 ms from 2 s.
        #expect(run.seconds.map(\.second) == Array(0...10))
        #expect(run.seconds[0].requests == 50 && run.seconds.dropFirst().allSatisfy { $0.requests == 20 })
        // Request 19 of every 20 failed without an answer, one a second; request 0 was answered 503.
        #expect(run.seconds.map(\.errors) == [0, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1])
        // Second 1: requests 0..<20, keys 0..<20 on b1 but for the failed one: all answered by b1.
        #expect(run.seconds[1].shares == [1: 1.0])
        #expect(run.seconds[3].events == ["kill b2", "health_down b2"] && run.seconds[6].events == ["add spare"])
        // Corrected latency of second 1: 100 µs × (index + 1) for indices 0..<19 answered: p50 the 10th.
        #expect(run.seconds[1].p50 == 1_000 && run.seconds[1].p99 == 1_900)
    }

    @Test("membership changes less than the settling second apart leave no keys to compare, in either order")
    func closeChanges() throws {
        // A remove 0.6 s after the add, or 0.5 s before it: neither has a settled stretch on both sides
        // (this made a reversed range and stopped lbctl run at its report).
        let (database, id) = try Self.sampleRun(moreEvents: [(7_600_000, "remove", "b3")])
        let report = try database.report(runID: id)
        #expect(report.remappedOnAdd == nil && report.remappedOnRemove == nil)
        let (earlier, earlierID) = try Self.sampleRun(moreEvents: [(6_500_000, "remove", "b3")])
        let other = try earlier.report(runID: earlierID)
        #expect(other.remappedOnAdd == nil && other.remappedOnRemove == nil)
    }

    @Test("shares, imbalance over the backends in service at the start, fault reactions, remapped keys, steal")
    func spreadAndFaults() throws {
        let (database, id) = try Self.sampleRun()
        let report = try database.report(runID: id)
        let counts = Dictionary(uniqueKeysWithValues: report.backends.map { ($0.name, $0.requests) })
        let total = counts.values.reduce(0, +)
        #expect(total == 190 && counts["spare"] == 0)
        #expect(report.backends.first { $0.name == "spare" }?.inServiceAtStart == false)
        let inService = ["b1", "b2", "b3"].map { Double(counts[$0]!) }
        let mean = inService.reduce(0, +) / 3
        let sd = (inService.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 3).squareRoot()
        #expect(abs(report.imbalance! - inService.max()! / mean) < 1e-9)
        #expect(abs(report.coefficientOfVariation! - sd / mean) < 1e-9)
        #expect(abs(report.jainIndex! - 190 * 190 / (3 * inService.map { $0 * $0 }.reduce(0, +))) < 1e-9)
        #expect(report.ejectSeconds == 0.6 && report.readmitSeconds == 1.25)
        // Keys 0..<10 went from b1 to b3; keys 20..<30 stayed on b2, 10..<20 on b1; keys 30..<40 were on
        // b2 and after the add mostly elsewhere (their backend rotates): counted as moved when the majority changed.
        let remapped = try #require(report.remappedOnAdd)
        #expect(remapped >= 0.25 && remapped <= 0.5, "\(remapped)")
        #expect(report.remappedOnRemove == nil)
        // Per second (20 requests each, the last second left out as partial): max/mean over b1..b3.
        var ratios: [Double] = []
        for second in 0..<9 {
            var counts = [1: 0.0, 2: 0.0, 3: 0.0]
            for index in second * 20..<(second + 1) * 20 {
                if let backend = Self.backend(for: index) { counts[backend]! += 1 }
            }
            let mean = counts.values.reduce(0, +) / 3
            ratios.append(counts.values.max()! / mean)
        }
        #expect(abs(report.imbalancePerSecond! - ratios.reduce(0, +) / 9) < 1e-9, "\(ratios)")
        #expect(report.imbalancePerSecond! > report.imbalance!, "unevenness within seconds exceeds the whole run's")
        // 2 s of steal over 10 s of two CPUs.
        #expect(abs(report.hostSteal! - 0.1) < 1e-9)
    }
}
