import Foundation
public import LBConfig
import LBCore
import LBLoad
import LBStats
import LBStore
import NIOPosix
import Synchronization

/// How `lbctl run` runs a scenario: where records and logs go, what runs the children, and the
/// command line's overrides of the scenario.
public struct StudySettings: Sendable {
    /// The results file.
    public var databasePath: String
    /// Where each run's logs and the proxy's configuration go (`OUT/run-ID/`).
    public var outDirectory: String
    /// The `lbctl` executable the backends and the proxy run as.
    public var executable: String
    /// Overrides the scenario's duration.
    public var duration: Duration?
    /// Overrides the scenario's repeats.
    public var repeats: Int?
    /// Runs only these algorithm labels (in the scenario's order).
    public var labels: [String]?
    /// Put backends in cgroup containers when the machine allows it (process runtime).
    public var containers: Bool
    /// Where the backends run.
    public var runtime: BackendRuntime
    /// The LBLab version.
    public var version: String

    /// Settings with the given paths and the scenario's own choices.
    public init(databasePath: String, outDirectory: String, executable: String, version: String) {
        self.databasePath = databasePath
        self.outDirectory = outDirectory
        self.executable = executable
        self.duration = nil
        self.repeats = nil
        self.labels = nil
        self.containers = true
        self.runtime = .processes
        self.version = version
    }
}

/// Where a study's backends run.
public enum BackendRuntime: Sendable, Hashable {
    /// `lbctl backend` processes the harness starts, each in a cgroup of its own when it can make one.
    case processes
    /// The containers `lblab-NAME` of the Docker engine on this unix socket (compose.yml), which the
    /// harness finds running, configures, faults and samples through the Engine API.
    case docker(socket: String)
}

/// Stops a study from outside (Ctrl-C, SIGTERM): the run in progress stops its load, keeps every
/// record and is marked `interrupted`; no further run starts.
public final class StudyControl: Sendable {
    private let interrupted = Atomic<Bool>(false)
    private let current = Mutex<LoadRun?>(nil)

    public init() {}

    /// Whether ``interrupt()`` was called.
    public var isInterrupted: Bool { self.interrupted.load(ordering: .relaxed) }

    /// Stops the study.
    public func interrupt() {
        self.interrupted.store(true, ordering: .relaxed)
        self.current.withLock { $0 }?.interrupt()
    }

    func setCurrent(_ run: LoadRun?) {
        self.current.withLock { $0 = run }
        if let run, self.isInterrupted { run.interrupt() }
    }
}

/// What a study printed and decided.
public struct StudyResult: Sendable {
    /// Every run, in order.
    public var outcomes: [RunOutcome]
    /// The reports of runs that recorded anything.
    public var comparison: Comparison
    /// Each expectation's verdict.
    public var verdicts: [(expectation: ExpectedOutcome, holds: Bool?, explanation: String)]
    /// Runs whose figures are suspect, and why (a host that stole CPU time).
    public var warnings: [String]
    /// Whether the study was interrupted.
    public var interrupted: Bool

    /// Every run completed and every expectation holds.
    public var succeeded: Bool {
        !self.interrupted && self.outcomes.allSatisfy { $0.status == .completed } && self.verdicts.allSatisfy { $0.holds == true }
    }
}

/// A scenario's whole matrix: every algorithm × every repeat, one after another, then the comparison
/// and the verdicts of `expect:`.
public final class Study: Sendable {
    public let scenario: Scenario
    public let settings: StudySettings
    public let control: StudyControl

    public init(scenario: Scenario, settings: StudySettings, control: StudyControl = StudyControl()) {
        self.scenario = scenario
        self.settings = settings
        self.control = control
    }

    /// The algorithms that run, after `--algorithms`.
    public var entries: [Scenario.AlgorithmUnderTest] {
        self.scenario.algorithms(labelled: self.settings.labels)
    }

    /// Runs the study. `line` prints a line; `status` shows the progress line (`nil` clears it).
    public func run(line: @escaping @Sendable (String) -> Void, status: @escaping @Sendable (String?) -> Void) async throws(HarnessError) -> StudyResult {
        let database = try ResultsDatabase.openForStudy(path: self.settings.databasePath)
        defer { try? database.close() }
        try? FileManager.default.createDirectory(atPath: self.settings.outDirectory, withIntermediateDirectories: true)
        let cgroups = self.makeContainers(line: line)
        defer {
            if let cgroups {
                let left = cgroups.removeAll()
                if !left.isEmpty { line("could not remove cgroups: \(left.joined(separator: ", "))") }
            }
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let points: [Scenario]
        do throws(HarnessError) {
            var capacity: Double?
            if let sweep = self.scenario.sweep, sweep.needsCapacity {
                capacity = try await self.probeCapacity(database: database, cgroups: cgroups, group: group, line: line, status: status)
            }
            points = try self.scenario.studyPoints(capacity: capacity)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        let outcomes = await self.runMatrix(points, database: database, cgroups: cgroups, group: group, line: line, status: status)
        try? await group.shutdownGracefully()
        return StudyResult(scenario: self.scenario, outcomes: outcomes, database: database, interrupted: self.control.isInterrupted) { reports in
            reports.compactMap { report -> String? in
                guard let steal = report.hostSteal, steal > RunReport.stealWarning else { return nil }
                return String(format: "run %lld (%@): the hypervisor took %.0f%% of this machine's CPU time (steal); its latency figures say more about the host than the algorithm — repeat it", report.run.id, report.run.algorithm ?? "?", steal * 100)
            }
        }
    }

    /// The fleet's capacity, measured by real probes (``CapacityProbe``), each kept as a run.
    private func probeCapacity(
        database: ResultsDatabase,
        cgroups: CgroupGroup?,
        group: MultiThreadedEventLoopGroup,
        line: @escaping @Sendable (String) -> Void,
        status: @escaping @Sendable (String?) -> Void
    ) async throws(HarnessError) -> Double {
        let entry = CapacityProbe.entry
        var settings = self.settings
        // The probe's own length, whatever --duration says of the points.
        settings.duration = nil
        return try await CapacityProbe.measure(self.scenario, database: database, line: line) { offered throws(HarnessError) in
            let run = ScenarioRun(
                scenario: self.scenario.probe(offered: offered, length: CapacityProbe.length), entry: entry, repeatIndex: 0, settings: settings,
                database: database, cgroups: cgroups, control: self.control, group: group, probe: offered
            )
            let outcome = await Self.perform(run, title: String(format: "capacity probe at %.1f req/s", offered), line: line, status: status)
            guard let runID = outcome.runID, outcome.status == .completed else {
                throw .sweep("the capacity probe did not complete: \(outcome.failure ?? outcome.status.rawValue)")
            }
            return runID
        }
    }

    private func runMatrix(
        _ points: [Scenario],
        database: ResultsDatabase,
        cgroups: CgroupGroup?,
        group: MultiThreadedEventLoopGroup,
        line: @escaping @Sendable (String) -> Void,
        status: @escaping @Sendable (String?) -> Void
    ) async -> [RunOutcome] {
        let repeats = self.settings.repeats ?? self.scenario.repeats
        // Each point's repeats, each repeat every algorithm: repeat k of each with the same seed.
        let plan = points.flatMap { point in
            (0..<repeats).flatMap { repeatIndex in self.entries.map { (point: point, entry: $0, repeatIndex: repeatIndex) } }
        }
        var outcomes: [RunOutcome] = []
        for (index, item) in plan.enumerated() where !self.control.isInterrupted {
            let title = "run \(index + 1)/\(plan.count) \(item.entry.label)" + (repeats > 1 ? " #\(item.repeatIndex + 1)" : "")
                + (item.point.point.map { " @ \($0)" } ?? "")
            let run = ScenarioRun(
                scenario: item.point, entry: item.entry, repeatIndex: item.repeatIndex, settings: self.settings,
                database: database, cgroups: cgroups, control: self.control, group: group
            )
            let outcome = await Self.perform(run, title: title, line: line, status: status)
            line(Self.outcomeLine(title, outcome))
            outcomes.append(outcome)
        }
        return outcomes
    }

    /// Runs `run` under `title`, its progress on the status line and its notes as lines.
    private static func perform(
        _ run: ScenarioRun,
        title: String,
        line: @escaping @Sendable (String) -> Void,
        status: @escaping @Sendable (String?) -> Void
    ) async -> RunOutcome {
        line("\(title): starting \(run.scenario.backends.count) backends and the proxy")
        let outcome = await run.perform(
            progress: { progress in status(Self.progressLine(title, progress)) },
            note: { note in
                status(nil)
                line("  \(note)")
            }
        )
        status(nil)
        return outcome
    }

    private func makeContainers(line: (String) -> Void) -> CgroupGroup? {
        if case .docker(let socket) = self.settings.runtime {
            line("containers: Docker (\(socket)), lblab-NAME for each backend")
            return nil
        }
        guard self.settings.containers else {
            line("containers: off (--no-containers); backends run as plain processes")
            return nil
        }
        switch CgroupLayout.detect() {
        case .failure(let error):
            line("containers: none (\(error)); backends run as plain processes without CPU or memory limits")
            return nil
        case .success(let layout):
            do {
                let group = try CgroupGroup(layout: layout)
                line("containers: cgroup \(layout.version.rawValue), one per backend")
                return group
            } catch {
                line("containers: none (cannot make cgroups: \(error)); backends run as plain processes without CPU or memory limits")
                return nil
            }
        }
    }

    static func progressLine(_ title: String, _ progress: RunProgress) -> String {
        let statistics = progress.statistics
        // The figures count from the end of the warm-up.
        let seconds = progress.elapsed.seconds - progress.warmup.seconds
        guard seconds > 0 else {
            return "\(title)  \(Int(progress.elapsed.seconds))/\(Int(progress.total.seconds))s  warming up"
        }
        let p99 = statistics.completed > 0 ? String(format: "%.1f", Double(statistics.corrected.valueAtPercentile(99)) / 1_000) : "-"
        let served = max(1, statistics.backends.values.reduce(0, +))
        let shares = statistics.backends.sorted { $0.key < $1.key }.map { "\($0.key) \(Int((Double($0.value) * 100 / Double(served)).rounded()))%" }
        return "\(title)  \(Int(progress.elapsed.seconds))/\(Int(progress.total.seconds))s  "
            + "\(Int(Double(statistics.sent) / seconds)) req/s  errors \(statistics.failed)  p99 \(p99) ms  "
            + shares.joined(separator: " ")
    }

    static func outcomeLine(_ title: String, _ outcome: RunOutcome) -> String {
        var text = "\(title): \(outcome.status.rawValue)"
        if let id = outcome.runID { text += " (run \(id))" }
        if let load = outcome.load {
            text += String(format: ", %.0f req/s, %d requests", load.achievedRate, load.statistics.sent)
        }
        if outcome.dropped > 0 { text += ", \(outcome.dropped) records dropped" }
        if let failure = outcome.failure { text += "\n  \(failure)" }
        return text
    }
}
