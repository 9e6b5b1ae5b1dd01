import Foundation
public import LBConfig
import LBCore
import LBStore

extension Scenario {
    /// The scenarios a study runs, in order: this one, or each point of its sweep, with shares of
    /// capacity taken of `capacity`.
    func studyPoints(capacity: Double?) throws(HarnessError) -> [Scenario] {
        guard let sweep = self.sweep else { return [self] }
        do {
            return try sweep.points.map { point throws(ConfigError) in try self.at(point, capacity: capacity) }
        } catch {
            throw .sweep("\(error)")
        }
    }

    /// The most requests a second its in-service backends can serve by their settings: each `capacity`
    /// requests at a time over its mean latency and CPU work, and no more than its CPU threads (or CPU
    /// limit) burn through. `nil` when a backend has neither limit: nothing bounds its rate.
    public var estimatedCapacity: Double? {
        var total = 0.0
        for backend in self.backends where backend.inService {
            let service = backend.latency.mean.seconds + backend.cpuWork.seconds
            var rate: Double?
            if let capacity = backend.capacity, service > 0 { rate = Double(capacity) / service }
            if backend.cpuWork > .zero {
                let cores = min(backend.cpuLimit ?? Double(backend.threads), Double(backend.threads))
                let cpu = cores / backend.cpuWork.seconds
                rate = min(rate ?? cpu, cpu)
            }
            guard let rate else { return nil }
            total += rate
        }
        return total
    }

    /// The scenario a capacity probe runs: without its sweep's values, its timeline or its
    /// expectations, `length` long (a quarter of it warm-up), offering `offered` requests a second,
    /// with a load timeout long enough that every request waits for its answer.
    func probe(offered: Double, length: Duration) -> Scenario {
        var probe = self
        probe.point = nil
        probe.sweep = nil
        probe.timeline = []
        probe.expectations = []
        probe.duration = length
        probe.warmup = length / 4
        probe.load.ratePerClient = offered / Double(probe.load.clients)
        probe.load.timeout = CapacityProbe.timeout
        return probe
    }
}

/// How a study finds the fleet's capacity before a sweep whose load is given as shares of it (`0.5c`):
/// it offers more than the backends' settings say they serve and counts what they do serve, offering
/// twice as much again while they keep up.
///
/// A probe is a run of least-connections, whatever the scenario compares: under overload it keeps
/// every backend's queue non-empty, fast and slow alike, so the fleet serves at its full rate (round
/// robin would leave a fast backend idle part of the time and count less). It is recorded like any
/// other run, with `"probe": "capacity"` and the rate offered in its `params_json`; what it served is
/// the successful answers (2xx) per second that reached the clients between the `measure` and `drain`
/// phases (after 5 of its 20 seconds), counted by when they were answered, not when they were due.
/// The backends' queues grow all along, and the answers that leave them come at the fleet's
/// saturation rate; the probe's requests wait as long as that takes (a ten-minute timeout).
enum CapacityProbe {
    /// A probe run's length.
    static let length = Duration.seconds(20)
    /// The load timeout of a probe's requests.
    static let timeout = Duration.seconds(600)
    /// The algorithm a probe runs.
    static let entry = Scenario.AlgorithmUnderTest(label: "least-connections", algorithm: .leastConnections, parametersYAML: nil)
    /// Offered load over the estimate at the first probe.
    static let overload = 1.25
    /// Served below this share of the offered rate: the fleet is saturated.
    static let saturated = 0.9
    /// Probes at most.
    static let attempts = 6

    /// The first rate to offer: a quarter more than the settings' estimate.
    static func firstOffer(_ scenario: Scenario) throws(HarnessError) -> Double {
        guard let estimate = scenario.estimatedCapacity, estimate > 0 else {
            throw .sweep("a share of capacity (0.5c) needs a fleet whose rate is bounded: give each backend a capacity, or CPU work")
        }
        return Self.overload * estimate
    }

    /// Runs probes with `probe` (offered rate → the run's id, or an error) until the fleet is saturated,
    /// and returns the rate it served.
    static func measure(
        _ scenario: Scenario,
        database: ResultsDatabase,
        line: (String) -> Void,
        probe: (Double) async throws(HarnessError) -> Int64
    ) async throws(HarnessError) -> Double {
        let first = try Self.firstOffer(scenario)
        var offered = first
        for _ in 0..<Self.attempts {
            let runID = try await probe(offered)
            let served: Double
            do {
                served = try database.servedRate(runID: runID)
            } catch {
                throw .store("\(error)")
            }
            line(String(format: "capacity probe (run %lld): offered %.1f req/s, served %.1f req/s", runID, offered, served))
            if served < Self.saturated * offered {
                guard served > 0 else { throw .sweep("the capacity probe (run \(runID)) served nothing; see lbctl report \(runID)") }
                return served
            }
            offered *= 2
        }
        throw .sweep(String(format: "the fleet kept up with %.1f req/s, %.0f times what its settings say it serves; its rate is not bounded enough to give load as a share of it", offered / 2, offered / 2 / (first / Self.overload)))
    }
}

/// What a run's `params_json` says of sweeps: its point (number and label), whether it was a capacity
/// probe (the rate it offered) or a run of a service-level search, and the total rate it offered.
struct SweepParameters: Sendable {
    var point: (index: Int, label: String)?
    var probe: Double?
    var search = false
    var totalRate: Double?
    /// Each swept field's value as the sweep gave it.
    var values: [String: String] = [:]
    /// The capacity the point's shares were taken of.
    var capacity: Double?

    init(json: String?) {
        guard let data = json?.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        if object["probe"] as? String == "capacity" { self.probe = (object["offered"] as? NSNumber)?.doubleValue ?? 0 }
        self.capacity = (object["capacity"] as? NSNumber)?.doubleValue
        self.search = object["search"] as? String == "service-level"
        self.totalRate = (object["total_rate"] as? NSNumber)?.doubleValue
        guard let index = (object["point"] as? NSNumber)?.intValue, let values = object["sweep"] as? [String: String] else { return }
        self.values = values
        let label = object["point_label"] as? String ?? values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        self.point = (index, label)
    }
}
