import ArgumentParser
import Foundation
import LBCLI
import LBConfig
import LBCore
import LBHarness

/// `lbctl run --scenario scenarios/NAME.yml`: the whole experiment (backends in containers, proxy,
/// load, samples, faults), every algorithm × repeat recorded in SQLite, then the comparison and the
/// verdicts of the scenario's `expect:`.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a scenario: every algorithm it compares, recorded, compared, and checked against its expect:.",
        discussion: """
            Exit status: 0 when every run completed and every expectation holds; 1 when an expectation \
            fails or a run failed; 64 for a bad scenario or flag; 130 when interrupted (Ctrl-C, SIGTERM \
            or SIGHUP keeps every record taken so far and marks the run interrupted).

            Metrics for expect (each the mean over an algorithm's repeats):
            \(ExpectedOutcome.Metric.allCases.map { "  \($0.rawValue): \($0.summary)" }.joined(separator: "\n"))
            """
    )

    @Option(name: .goStyle("scenario"), help: "The scenario file (scenarios/NAME.yml).")
    var scenario: String

    @Option(name: .goStyle("db"), help: "The results file (SQLite), created when missing.")
    var db = "lblab.db"

    @Option(name: .goStyle("algorithms"), help: "Only these of the scenario's algorithms, by label or alias, comma-separated.")
    var algorithms: String?

    @Option(name: .goStyle("repeat"), help: "Repeats of each algorithm (overrides the scenario's repeats).")
    var repeats: Int?

    @Option(name: .goStyle("duration"), help: "Length of each run's load (overrides the scenario's duration), e.g. 10s.")
    var duration: String?

    @Option(name: .goStyle("out"), help: "Where each run's logs and proxy configuration go.")
    var out = "results"

    @Flag(name: .goStyle("no-containers"), help: "Run backends as plain processes, without cgroup limits.")
    var noContainers = false

    @Option(
        name: .goStyle("runtime"),
        help: "process: the harness starts each backend (in a cgroup where it can); docker: the backends are the running containers lblab-NAME (compose.yml)."
    )
    var runtime = "process"

    @Option(name: .goStyle("docker-socket"), help: "With --runtime docker: the Docker Engine API's unix socket.")
    var dockerSocket = "/var/run/docker.sock"

    func validate() throws {
        try requireFlag("runtime", ["process", "docker"].contains(self.runtime), "\"\(self.runtime)\" is not a runtime; use process or docker")
    }

    func run() async throws {
        let scenario: Scenario
        do {
            scenario = try Scenario.load(path: self.scenario)
        } catch {
            printError("lbctl run: \(error)")
            throw ExitCode(64)
        }
        guard scenario.backends.count <= Scenario.realBackendLimit else {
            printError(
                "lbctl run: \(self.scenario): backends: \(scenario.backends.count) backends; a real run starts a process for each, "
                    + "at most \(Scenario.realBackendLimit) (lbctl sim takes up to \(Scenario.simulatedBackendLimit))"
            )
            throw ExitCode(64)
        }
        var settings = StudySettings(databasePath: self.db, outDirectory: self.out, executable: BuildInfo.executablePath, version: LBLabVersion.string)
        settings.containers = !self.noContainers
        settings.runtime = self.runtime == "docker" ? .docker(socket: self.dockerSocket) : .processes
        settings.repeats = self.repeats
        if let repeats {
            try requireFlag("repeat", (1...1_000).contains(repeats), "must be between 1 and 1000, got \(repeats)")
        }
        if let duration {
            settings.duration = try flagValue("duration") { try GoDuration.parse(duration) }
            try requireFlag("duration", settings.duration! > scenario.warmup, "must be longer than the scenario's warm-up (\(GoDuration.format(scenario.warmup)))")
            for step in scenario.timeline where step.at >= settings.duration! {
                printError("note: the timeline step at \(GoDuration.format(step.at)) (line \(step.line)) falls after -duration and will not happen")
            }
        }
        if let algorithms {
            settings.labels = try algorithms.split(separator: ",").map { name in
                let text = name.trimmingCharacters(in: .whitespaces)
                let label = scenario.labels.contains(text) ? text : Algorithm(name: text)?.name ?? text
                try requireFlag("algorithms", scenario.labels.contains(label), "\"\(text)\" is not one of the scenario's: \(scenario.labels.joined(separator: ", "))")
                return label
            }
        }
        let study = Study(scenario: scenario, settings: settings)
        let progress = ProgressLine()
        let forwarder = SignalForwarder(hangup: true) { study.control.interrupt() }
        defer { forwarder.cancel() }
        print("scenario \(scenario.name): \(scenario.question)")
        let result: StudyResult
        do {
            result = try await study.run(
                line: { line in
                    progress.clear()
                    printError(line)
                },
                status: { line in
                    if let line { progress.show(line) } else { progress.clear() }
                }
            )
        } catch {
            printError("lbctl run: \(error)")
            throw ExitCode.failure
        }
        print("")
        print(result.comparison.table())
        for warning in result.warnings {
            print("warning: \(warning)")
        }
        if !result.verdicts.isEmpty {
            print("\nexpect:")
            for verdict in result.verdicts {
                let mark = verdict.holds.map { $0 ? "PASS" : "FAIL" } ?? "????"
                print("  \(mark)  \(verdict.expectation.text)\n        \(verdict.explanation)")
            }
        }
        print("\nrecorded in \(self.db): runs \(result.outcomes.compactMap(\.runID).map(String.init).joined(separator: ", ")) (lbctl report, lbctl export)")
        if result.interrupted { throw ExitCode(130) }
        if !result.succeeded { throw ExitCode.failure }
    }
}
