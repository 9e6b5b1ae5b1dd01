import Foundation
public import LBConfig
import LBCore
import LBSim
import LBStore
import Synchronization

/// How `lbctl sim` runs a scenario: where records go and the command line's overrides.
public struct SimStudySettings: Sendable {
    /// The results file.
    public var databasePath: String
    /// Overrides the scenario's duration (virtual time).
    public var duration: Duration?
    /// Overrides the scenario's repeats.
    public var repeats: Int?
    /// Runs only these algorithm labels (in the scenario's order).
    public var labels: [String]?
    /// Overrides the scenario's seed.
    public var seed: UInt64?
    /// Stops each run's load after this many requests.
    public var requests: Int?
    /// Multiplies clients, rate and backends.
    public var scale: Int
    /// Whether every request becomes a row.
    public var keepsRecords: Bool
    /// The LBLab version.
    public var version: String

    /// Settings with the given file and the scenario's own choices, keeping records.
    public init(databasePath: String, version: String) {
        self.databasePath = databasePath
        self.scale = 1
        self.keepsRecords = true
        self.version = version
    }
}

/// A scenario's whole matrix in virtual time: every algorithm × every repeat, one after another, each
/// a `runs` row of kind `sim`, then the comparison and the verdicts of `expect:`, as ``Study`` gives
/// them for real runs.
public final class SimStudy: Sendable {
    public let scenario: Scenario
    public let settings: SimStudySettings
    private let interrupted = Atomic<Bool>(false)

    public init(scenario: Scenario, settings: SimStudySettings) {
        self.scenario = scenario
        self.settings = settings
    }

    /// Stops the run in progress at its next progress report (it is marked `interrupted`, its records
    /// kept) and starts no further run.
    public func interrupt() {
        self.interrupted.store(true, ordering: .relaxed)
    }

    /// The algorithms that run, after `--algorithms`.
    public var entries: [Scenario.AlgorithmUnderTest] {
        self.scenario.algorithms(labelled: self.settings.labels)
    }

    /// Runs the study. `line` prints a line; `status` shows the progress line (`nil` clears it).
    public func run(line: @escaping @Sendable (String) -> Void, status: @escaping @Sendable (String?) -> Void) async throws(HarnessError) -> StudyResult {
        let database = try ResultsDatabase.openForStudy(path: self.settings.databasePath)
        defer { try? database.close() }
        var capacity: Double?
        if let sweep = self.scenario.sweep, sweep.needsCapacity {
            capacity = try await self.probeCapacity(database: database, line: line, status: status)
        }
        let points = try self.scenario.studyPoints(capacity: capacity)
        let repeats = self.settings.repeats ?? self.scenario.repeats
        // Each point's repeats, each repeat every algorithm: repeat k of each with the same seed.
        let plan = points.flatMap { point in
            (0..<repeats).flatMap { repeatIndex in self.entries.map { (point: point, entry: $0, repeatIndex: repeatIndex) } }
        }
        var outcomes: [RunOutcome] = []
        for (index, item) in plan.enumerated() where !self.interrupted.load(ordering: .relaxed) {
            let title = "sim \(index + 1)/\(plan.count) \(item.entry.label)" + (repeats > 1 ? " #\(item.repeatIndex + 1)" : "")
                + (item.point.point.map { " @ \($0)" } ?? "")
            let outcome = await self.perform(item.entry, at: item.point, repeatIndex: item.repeatIndex, database: database) { progress in
                status(Self.progressLine(title, progress))
            }
            status(nil)
            line(Self.outcomeLine(title, outcome))
            outcomes.append(outcome.run)
        }
        let searchRuns = await self.searchServiceLevel(points, outcomes: outcomes, repeats: repeats, database: database, line: line, status: status)
        return StudyResult(
            scenario: self.scenario, outcomes: outcomes, searchRuns: searchRuns, database: database, interrupted: self.interrupted.load(ordering: .relaxed)
        )
    }

    /// The seed of a repeat: the scenario's (or `--seed`), moved by the repeat number, as a real run's.
    func seed(repeatIndex: Int) -> UInt64 {
        (self.settings.seed ?? self.scenario.seed) &+ UInt64(repeatIndex)
    }

    private struct Performed: Sendable {
        var run: RunOutcome
        var simulated: SimOutcome?
        var seconds: Double
    }

    /// With an `slo:` and a sweep of the load, each algorithm's throughput at the service level by
    /// bisection between the last point where it holds and the next: the scenario's repeats at the
    /// middle load, the interval halved toward where the means fail, until it is within half a
    /// percent of the load or after ``searchSteps`` steps. Each run is kept, marked as the search's;
    /// returns their ids.
    private func searchServiceLevel(
        _ points: [Scenario],
        outcomes: [RunOutcome],
        repeats: Int,
        database: ResultsDatabase,
        line: @escaping @Sendable (String) -> Void,
        status: @escaping @Sendable (String?) -> Void
    ) async -> [Int64] {
        guard let level = self.scenario.serviceLevel, let template = points.last else { return [] }
        var comparison = StudyResult(scenario: self.scenario, outcomes: outcomes, database: database, interrupted: false).comparison
        guard comparison.axisIsLoad else { return [] }
        comparison.serviceLevel = level
        var searchRuns: [Int64] = []
        for entry in self.entries {
            guard case .interpolated(_, var low, var high)? = comparison.serviceLevelThroughput(entry.label) else { continue }
            for step in 0..<Self.searchSteps where high - low > 0.005 * high && !self.interrupted.load(ordering: .relaxed) {
                let middle = (low + high) / 2
                var at = template
                at.point = nil
                at.load.ratePerClient = middle / Double(at.load.clients * self.settings.scale)
                var values: [Double] = []
                var errors: [Double] = []
                for repeatIndex in 0..<repeats {
                    let title = String(format: "slo search %@ step %d at %.1f req/s", entry.label, step + 1, middle)
                    let performed = await self.perform(entry, at: at, repeatIndex: repeatIndex, search: true, database: database) { progress in
                        status(Self.progressLine(title, progress))
                    }
                    status(nil)
                    guard let id = performed.run.runID, performed.run.status == .completed, let report = try? database.report(runID: id) else { continue }
                    searchRuns.append(id)
                    if let value = Comparison.value(level.metric, of: report) { values.append(value) }
                    if let rate = Comparison.value(.errorRate, of: report) { errors.append(rate) }
                }
                guard !values.isEmpty else { break }
                let value = values.reduce(0, +) / Double(values.count)
                let errorRate = errors.isEmpty ? 0 : errors.reduce(0, +) / Double(errors.count)
                let holds = value <= Double(level.target.nanoseconds) / 1e6 && errorRate <= level.errorRate
                line(String(format: "slo search %@: %.1f req/s %@ (%@ %.2f ms, error rate %.4f over %d runs)", entry.label, middle, holds ? "holds" : "fails", level.metric.rawValue, value, errorRate, values.count))
                if holds { low = middle } else { high = middle }
            }
        }
        return searchRuns
    }

    /// Bisection steps of a service-level search at most.
    static let searchSteps = 8

    /// The fleet's capacity, measured by simulated probes (``CapacityProbe``), each kept as a run.
    private func probeCapacity(
        database: ResultsDatabase,
        line: @escaping @Sendable (String) -> Void,
        status: @escaping @Sendable (String?) -> Void
    ) async throws(HarnessError) -> Double {
        let entry = CapacityProbe.entry
        return try await CapacityProbe.measure(self.scenario, database: database, line: line) { offered throws(HarnessError) in
            let probe = self.scenario.probe(offered: offered, length: CapacityProbe.length)
            let performed = await self.perform(entry, at: probe, repeatIndex: 0, probe: offered, database: database) { progress in
                status(Self.progressLine(String(format: "capacity probe at %.1f req/s", offered), progress))
            }
            status(nil)
            guard let runID = performed.run.runID, performed.run.status == .completed else {
                throw .sweep("the capacity probe did not complete: \(performed.run.failure ?? performed.run.status.rawValue)")
            }
            return runID
        }
    }

    /// One run of `scenario` (the study's, or one of its sweep's points), on a thread of its own (it
    /// computes without pause), into a `runs` row of its own. A capacity probe's run (`probe`: the rate
    /// it offers) keeps its records whatever the settings say, and runs at the probe's own length.
    private func perform(
        _ entry: Scenario.AlgorithmUnderTest,
        at scenario: Scenario,
        repeatIndex: Int,
        probe: Double? = nil,
        search: Bool = false,
        database: ResultsDatabase,
        progress: @escaping @Sendable (SimProgress) -> Void
    ) async -> Performed {
        let seed = self.seed(repeatIndex: repeatIndex)
        var settings = SimulationSettings(scenario: scenario, seed: seed)
        if let duration = self.settings.duration, probe == nil { settings.duration = duration }
        settings.requestLimit = probe == nil ? self.settings.requests : nil
        // A probe measures the fleet as the scenario gives it; the points' shares of that capacity are
        // scaled with the rest.
        settings.scale = probe == nil ? self.settings.scale : 1
        settings.keepsRecords = self.settings.keepsRecords || probe != nil
        let failed = { (failure: String, runID: Int64?) in
            Performed(run: RunOutcome(runID: runID, label: entry.label, repeatIndex: repeatIndex, status: .failed, failure: failure), seconds: 0)
        }
        let recorder: RunRecorder
        do {
            recorder = try database.beginRun(self.runInfo(scenario, entry, repeatIndex: repeatIndex, seed: seed, settings: settings, probe: probe, search: search))
        } catch {
            return failed("\(error)", nil)
        }
        let simulation: Simulation
        do {
            simulation = try Simulation(scenario: scenario, entry: entry, settings: settings, sink: recorder)
        } catch {
            _ = try? recorder.finish(status: .failed, durationMicros: nil)
            return failed("\(error)", recorder.runID)
        }
        let box = UncheckedBox(simulation)
        let started = ContinuousClock.now
        let simulated: SimOutcome = await withCheckedContinuation { continuation in
            let thread = Thread {
                let outcome = box.value.run(progressEvery: 250_000) { report in
                    progress(report)
                    return !self.interrupted.load(ordering: .relaxed)
                }
                continuation.resume(returning: outcome)
            }
            thread.name = "lbctl sim"
            thread.start()
        }
        let seconds = (ContinuousClock.now - started).seconds
        let status: RunStatus = simulated.completed ? .completed : .interrupted
        if let totals = simulated.totals {
            do {
                try database.recordTotals(totals, runID: recorder.runID)
            } catch {
                _ = try? recorder.finish(status: .failed, durationMicros: simulated.virtualTime.nanoseconds / 1_000)
                return Performed(run: RunOutcome(runID: recorder.runID, label: entry.label, repeatIndex: repeatIndex, status: .failed, failure: "\(error)"), seconds: seconds)
            }
        }
        let finished = try? recorder.finish(status: status, durationMicros: simulated.virtualTime.nanoseconds / 1_000)
        return Performed(
            run: RunOutcome(
                runID: recorder.runID, label: entry.label, repeatIndex: repeatIndex, status: finished?.status ?? .failed,
                failure: finished == nil ? "the results file did not take the run's end" : nil, dropped: finished?.dropped ?? 0
            ),
            simulated: simulated,
            seconds: seconds
        )
    }

    private func runInfo(
        _ scenario: Scenario,
        _ entry: Scenario.AlgorithmUnderTest,
        repeatIndex: Int,
        seed: UInt64,
        settings: SimulationSettings,
        probe: Double?,
        search: Bool
    ) -> RunInfo {
        var parameters: [String: Any] = [
            "backends": scenario.backends.count * settings.scale,
            "clients": min(ClientAddresses.capacity, scenario.load.clients * settings.scale),
            "total_rate": scenario.load.totalRate * Double(settings.scale),
            "duration": GoDuration.format(settings.duration),
            "scale": settings.scale,
            "records": settings.keepsRecords,
        ]
        if let requests = settings.requestLimit { parameters["requests"] = requests }
        if let probe {
            parameters["probe"] = "capacity"
            parameters["offered"] = probe
        }
        if search { parameters["search"] = "service-level" }
        return scenario.runInfo(kind: .sim, entry: entry, repeatIndex: repeatIndex, seed: seed, parameters: parameters, version: self.settings.version)
    }

    static func progressLine(_ title: String, _ progress: SimProgress) -> String {
        String(
            format: "%@  %.1f/%.0fs virtual  %d requests",
            title, progress.virtualTime.seconds, progress.duration.seconds, progress.requests
        )
    }

    private static func outcomeLine(_ title: String, _ performed: Performed) -> String {
        var text = "\(title): \(performed.run.status.rawValue)"
        if let id = performed.run.runID { text += " (run \(id))" }
        if let simulated = performed.simulated {
            let rate = performed.seconds > 0 ? Double(simulated.requests) / performed.seconds : 0
            text += String(
                format: ", %d requests in %.1fs of virtual time, %.2fs of real time (%.2f M requests/s)",
                simulated.requests, simulated.virtualTime.seconds, performed.seconds, rate / 1e6
            )
            // What the simulator counted as it went, whether or not it kept rows: the measured window's
            // corrected latency and errors.
            let tally = simulated.tally
            if tally.answered > 0 {
                let percentile = { (percent: Double) -> Double in
                    guard let totals = simulated.totals?.run.corrected else { return Double(tally.latency.valueAtPercentile(percent)) / 1e6 }
                    return Double(totals.value(atPercentile: percent) ?? 0) / 1e3
                }
                text += String(
                    format: "; counted: p50 %.2f ms, p99 %.2f ms, mean %.2f ms, %d errors",
                    percentile(50), percentile(99), tally.meanLatencyNanos / 1e6, tally.failed
                )
            }
        }
        if performed.run.dropped > 0 { text += ", \(performed.run.dropped) records dropped" }
        if let failure = performed.run.failure { text += "\n  \(failure)" }
        return text
    }
}

/// Hands a value that is used by one thread at a time to the thread that runs it.
private final class UncheckedBox<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
