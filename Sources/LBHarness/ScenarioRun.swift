import Foundation
import LBConfig
import LBCore
public import LBLoad
import LBStats
public import LBStore
import NIOCore
import NIOPosix
import Synchronization

/// One run of a study: one algorithm of the scenario, one repeat. It starts the backends (each in its
/// container), the proxy with the algorithm, the sampler, the load and the fault timeline; records
/// everything under one `runs` row; and stops everything it started, whatever happens.
///
/// Time zero of every record is the moment the run begins, before any process starts; the load starts
/// once the backends and the proxy answer, and the timeline counts from the load's start. Phases are
/// events: `phase setup` at 0, `phase load`, `phase measure` (after the warm-up), `phase drain`.
final class ScenarioRun: Sendable {
    let scenario: Scenario
    let entry: Scenario.AlgorithmUnderTest
    let repeatIndex: Int
    let settings: StudySettings
    let database: ResultsDatabase
    let cgroups: CgroupGroup?
    let control: StudyControl
    /// The rate a capacity probe's run offers, when it is one.
    let probe: Double?
    private let group: any EventLoopGroup

    init(
        scenario: Scenario,
        entry: Scenario.AlgorithmUnderTest,
        repeatIndex: Int,
        settings: StudySettings,
        database: ResultsDatabase,
        cgroups: CgroupGroup?,
        control: StudyControl,
        group: any EventLoopGroup,
        probe: Double? = nil
    ) {
        self.probe = probe
        self.scenario = scenario
        self.entry = entry
        self.repeatIndex = repeatIndex
        self.settings = settings
        self.database = database
        self.cgroups = cgroups
        self.control = control
        self.group = group
    }

    /// The seed of this repeat: the scenario's, moved by the repeat number so that repeats differ.
    var seed: UInt64 { self.scenario.seed &+ UInt64(self.repeatIndex) }

    /// Runs it to its end, its interruption or its failure, and says which.
    func perform(progress: @escaping @Sendable (RunProgress) -> Void, note: @escaping @Sendable (String) -> Void) async -> RunOutcome {
        let origin = NIODeadline.now().uptimeNanoseconds
        let recorder: RunRecorder
        do {
            recorder = try self.database.beginRun(self.runInfo())
        } catch {
            return RunOutcome(runID: nil, label: self.entry.label, repeatIndex: self.repeatIndex, status: .failed, failure: "\(error)")
        }
        let logDirectory = "\(self.settings.outDirectory)/run-\(recorder.runID)"
        try? FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        var backendIDs: [String: Int] = [:]
        for (index, backend) in self.scenario.backends.enumerated() {
            backendIDs[backend.name] = index + 1
        }
        recorder.record(RunEvent(tMicros: 0, kind: "phase", subject: "setup"))

        var fleet: (any BackendSet)?
        var proxy: ProxyProcess?
        var status = RunStatus.completed
        var failure: String?
        var load: LoadReport?
        do {
            let members: any BackendSet
            switch self.settings.runtime {
            case .processes:
                members = try BackendFleet(
                    scenario: self.scenario, seed: self.seed, executable: self.settings.executable, logDirectory: logDirectory,
                    cgroups: self.cgroups, group: self.group
                )
            case .docker(let socket):
                members = try await DockerFleet(scenario: self.scenario, socket: socket, group: self.group)
            }
            fleet = members
            do {
                try recorder.recordNow(
                    members.placements.enumerated().map { index, placement in
                        BackendRecord(
                            id: index + 1, name: placement.spec.name, address: placement.address.description, weight: Double(placement.spec.weight),
                            specJSON: placement.spec.specJSON(container: members.isolation)
                        )
                    }
                )
            } catch {
                throw HarnessError.store("\(error)")
            }
            try await members.startAll()
            let started = try ProxyProcess(
                scenario: self.scenario, entry: self.entry, seed: self.seed, backends: members, database: self.database.path, runID: recorder.runID,
                clockOrigin: origin, executable: self.settings.executable, logDirectory: logDirectory, group: self.group
            )
            proxy = started
            try await started.waitReady()
            guard !self.control.isInterrupted else { throw RunStop.interrupted }
            load = try await self.drive(fleet: members, proxy: started, recorder: recorder, origin: origin, backendIDs: backendIDs, progress: progress, note: note)
            if self.control.isInterrupted { status = .interrupted }
            if !started.process.isRunning {
                status = .failed
                failure = "the proxy ended during the run (exit \(started.process.exitStatus() ?? 0)); its last output:\n\(started.process.logTail())"
            }
        } catch RunStop.interrupted {
            status = .interrupted
        } catch {
            status = .failed
            failure = "\(error)"
        }
        // Stop what was started: the proxy first (it writes its records as it stops), then the backends.
        recorder.record(RunEvent(tMicros: Self.micros(since: origin), kind: "phase", subject: "stop"))
        if let proxy, let exit = await proxy.stop(grace: .seconds(15)), exit != 0, status == .completed {
            status = .failed
            let how = exit < 0 ? "was killed by signal \(-exit) after its grace" : "exited with status \(exit)"
            failure = "the proxy did not stop cleanly (it \(how)); its last output:\n\(proxy.process.logTail())"
        }
        await fleet?.stopAll(grace: .seconds(2))
        let finished: RunRecorder.FinishedRun?
        do {
            finished = try recorder.finish(status: status, durationMicros: Self.micros(since: origin))
        } catch {
            finished = nil
            failure = failure ?? "\(error)"
        }
        let left = fleet?.runningPIDs ?? []
        return RunOutcome(
            runID: recorder.runID,
            label: self.entry.label,
            repeatIndex: self.repeatIndex,
            status: finished?.status ?? .failed,
            failure: failure ?? (left.isEmpty ? nil : "processes still running: \(left)"),
            load: load,
            dropped: finished?.dropped ?? 0
        )
    }

    /// The measured part: sampler, timeline and load, until the load ends.
    private func drive(
        fleet: any BackendSet,
        proxy: ProxyProcess,
        recorder: RunRecorder,
        origin: UInt64,
        backendIDs: [String: Int],
        progress: @escaping @Sendable (RunProgress) -> Void,
        note: @escaping @Sendable (String) -> Void
    ) async throws -> LoadReport {
        let sampler = RunSampler(
            fleet: fleet, proxy: proxy, sink: recorder, clockOrigin: origin, interval: self.scenario.sampleInterval,
            sendsFigures: self.entry.algorithm == .leastResources
        )
        let sampling = Task { await sampler.run() }
        defer { sampling.cancel() }
        let loadStart = NIODeadline.now().uptimeNanoseconds + 100_000_000
        let timeline = TimelineDriver(steps: self.scenario.timeline, fleet: fleet, proxy: proxy, sink: recorder, clockOrigin: origin, report: note)
        let faults = Task { await timeline.run(loadStart: loadStart) }
        defer { faults.cancel() }
        let loadRun = LoadRun(
            configuration: self.loadConfiguration(target: proxy.listen),
            sink: recorder,
            recordOrigin: origin,
            startAt: loadStart,
            backendIDs: backendIDs
        )
        self.control.setCurrent(loadRun)
        defer { self.control.setCurrent(nil) }
        let startMicros = Self.micros(since: origin, at: loadStart)
        recorder.record(RunEvent(tMicros: startMicros, kind: "phase", subject: "load"))
        recorder.record(RunEvent(tMicros: startMicros + self.scenario.warmup.nanoseconds / 1_000, kind: "phase", subject: "measure"))
        let total = self.settings.duration ?? self.scenario.duration
        let report = try await loadRun.run { update in
            let statistics = update.statistics
            sampler.loadInFlight.store(max(0, statistics.sent - statistics.completed), ordering: .relaxed)
            if !proxy.process.isRunning { loadRun.interrupt() }
            progress(RunProgress(elapsed: update.elapsed, total: total, warmup: self.scenario.warmup, statistics: statistics))
        }
        recorder.record(RunEvent(tMicros: Self.micros(since: origin), kind: "phase", subject: "drain"))
        await sampler.sampleAll()
        return report
    }

    func loadConfiguration(target: HostPort) -> LoadConfiguration {
        let load = self.scenario.load
        var configuration = LoadConfiguration(
            target: .init(host: target.host, port: target.port, path: load.path),
            clients: load.clients,
            pacing: .openLoop(ratePerClient: load.ratePerClient, arrival: load.arrival)
        )
        configuration.duration = self.settings.duration ?? self.scenario.duration
        configuration.warmup = min(self.scenario.warmup, configuration.duration! / 2)
        configuration.method = load.method
        configuration.timeout = load.timeout
        configuration.seed = self.seed
        configuration.threads = load.threads
        configuration.webSocket = load.webSocket
        if let count = load.keyCount { configuration.keys = ZipfKeys(count: count, exponent: load.zipf) }
        return configuration
    }

    private func runInfo() -> RunInfo {
        var parameters: [String: Any] = [
            "backends": self.scenario.backends.count,
            "clients": self.scenario.load.clients,
            "total_rate": self.scenario.load.totalRate,
            "duration": GoDuration.format(self.settings.duration ?? self.scenario.duration),
            "containers": self.settings.runtime == .processes ? self.cgroups.map { "cgroup " + $0.layout.version.rawValue } ?? "none" : "docker",
            "host_cpus": ProcessInfo.processInfo.activeProcessorCount,
        ]
        if let probe = self.probe {
            parameters["probe"] = "capacity"
            parameters["offered"] = probe
        }
        return self.scenario.runInfo(kind: .real, entry: self.entry, repeatIndex: self.repeatIndex, seed: self.seed, parameters: parameters, version: self.settings.version)
    }

    /// Microseconds from the run's `origin` to `nanos` (monotonic uptime nanoseconds; now by default):
    /// the time of every record of the run.
    static func micros(since origin: UInt64, at nanos: UInt64 = NIODeadline.now().uptimeNanoseconds) -> Int64 {
        Int64(bitPattern: nanos &- origin) / 1_000
    }

    private enum RunStop: Error { case interrupted }
}

/// How one run ended.
public struct RunOutcome: Sendable {
    /// Its id in the results file (`nil` when it could not even begin).
    public var runID: Int64?
    /// The algorithm's label.
    public var label: String
    /// The repeat number.
    public var repeatIndex: Int
    /// As recorded.
    public var status: RunStatus
    /// What went wrong, when something did.
    public var failure: String?
    /// The load generator's report, when the load ran.
    public var load: LoadReport?
    /// Records the store could not keep.
    public var dropped: Int = 0
}

/// The figures a run's progress line shows, once a second.
public struct RunProgress: Sendable {
    /// Time since the load started.
    public var elapsed: Duration
    /// The load's length.
    public var total: Duration
    /// The warm-up, which the figures leave out.
    public var warmup: Duration
    /// The load generator's figures so far (after the warm-up).
    public var statistics: LoadStatistics
}
