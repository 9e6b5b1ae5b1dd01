import Foundation
import LBConfig
import LBCore
import Testing

@testable import LBSim

/// What a simulated run records: the same seed gives the very same records, another seed others; the
/// records say what the tally counts.
@Suite("simulator records")
struct SimulationRecordTests {
    static let scenario = """
        name: records
        seed: 5
        duration: 20s
        warmup: 2s
        algorithms: [power-of-two, random]
        backends: {count: 3, latency: "lognormal(2ms,20ms)", capacity: 4, errors: 0.01}
        load: {clients: 20, rate: 25, arrival: poisson, keys: {count: 100, zipf: 1.1}}
        sim: {delays: {client-proxy: exponential(100us), proxy-backend: 20us, proxy-client: 50us}}
        """

    static func record(seed: UInt64, algorithm: Int = 0) throws -> (InMemoryRecordSink.Contents, SimOutcome) {
        let scenario = try Scenario.parse(Self.scenario, file: "records.yml")
        let sink = InMemoryRecordSink()
        var simulation = try Simulation(
            scenario: scenario, entry: scenario.algorithms[algorithm], settings: SimulationSettings(scenario: scenario, seed: seed), sink: sink
        )
        let outcome = simulation.run()
        return (sink.snapshot, outcome)
    }

    @Test("the same seed gives the same records, row for row; another seed, other records")
    func sameSeedSameRecords() throws {
        let (first, _) = try Self.record(seed: 5)
        let (again, _) = try Self.record(seed: 5)
        let (other, _) = try Self.record(seed: 6)
        #expect(first.requests.count > 9_000)
        #expect(first.requests == again.requests && first.proxyRequests == again.proxyRequests)
        #expect(first.samples == again.samples && first.events == again.events)
        #expect(first.requests != other.requests)
        // Another seed changes the arrivals, the picks and the service times alike.
        #expect(first.requests.map(\.intendedMicros) != other.requests.map(\.intendedMicros))
        #expect(first.proxyRequests.map(\.backendID) != other.proxyRequests.map(\.backendID))
    }

    @Test("records join client and proxy views, carry TEST-NET addresses and keys, and agree with the tally")
    func recordsAgree() throws {
        let (records, outcome) = try Self.record(seed: 5)
        let requests = records.requests
        // 20 clients at 25/s for 20 s: 10,000 due, Poisson (sd 100).
        #expect(abs(requests.count - 10_000) < 400 && requests.count == outcome.requests)
        #expect(Set(requests.map(\.id)).count == requests.count)
        #expect(Set(requests.map(\.clientIP)).count == 20 && requests.allSatisfy { ClientAddresses.contains($0.clientIP) })
        #expect(requests.allSatisfy { ($0.key ?? -1) >= 0 && $0.key! < 100 })
        let proxy = Dictionary(uniqueKeysWithValues: records.proxyRequests.map { ($0.requestID, $0) })
        for request in requests {
            let seen = try #require(proxy[request.id])
            #expect(seen.backendID == request.backendID && seen.status == request.status)
            // The delays: the proxy picks after the client sends, and the client is done after the proxy.
            #expect(seen.receivedMicros >= request.sentMicros && request.doneMicros >= seen.upstreamDoneMicros!)
            #expect(seen.clientIP == request.clientIP)
        }
        let errors = requests.filter { ($0.status ?? 0) >= 500 }.count
        // 1% errors at the backends.
        #expect(errors > 40 && errors < 170, "\(errors) errors")
        let window = requests.filter { $0.intendedMicros >= 2_000_000 }
        #expect(window.count == outcome.tally.requests)
        #expect(window.filter { ($0.status ?? 0) >= 500 }.count == outcome.tally.failed)
        let backends = records.backends.map(\.name)
        #expect(backends == ["b1", "b2", "b3"])
        #expect(records.events.filter { $0.kind == "phase" }.map(\.subject) == ["load", "measure", "drain", "stop"])
        // A sample of each backend every 250 ms.
        #expect(records.samples.count >= 3 * 80)
    }

    @Test("memory holds what is in flight, not what was: 400,000 requests under a one-hour timeout")
    func flatMemory() throws {
        let scenario = try Scenario.parse(
            """
            name: flat
            duration: 1000000s
            algorithms: [round-robin]
            backends: {count: 10, latency: exponential(1ms), capacity: 1}
            load: {clients: 5, total-rate: 8000, arrival: poisson, timeout: 1h}
            sample-interval: 1000s
            """,
            file: "flat.yml"
        )
        var settings = SimulationSettings(scenario: scenario, seed: 1)
        settings.requestLimit = 400_000
        settings.keepsRecords = false
        var simulation = try Simulation(scenario: scenario, entry: scenario.algorithms[0], settings: settings, sink: nil)
        _ = simulation.run()
        // Ten M/M/1 queues at rho = 0.8 hold about 40 requests at once: the slots ever used stay near
        // the most in flight, and the clients' one-hour deadlines are dropped once their requests are
        // answered, not kept for the hour (3,600 s x 8,000/s would be every request of the run).
        #expect(simulation.requests.count < 2_000, "\(simulation.requests.count) request slots")
        #expect(simulation.jobs.count < 2_000, "\(simulation.jobs.count) job slots")
        #expect(simulation.clientDeadlines.count < 10_000 && simulation.headerDeadlines.count < 10_000)
    }
}
