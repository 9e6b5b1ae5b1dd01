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
        abstract: "Run a scenario: every algorithm it compares, at every point of its sweep, recorded, compared, and checked against its expect:.",
        discussion: """
            \(ScenarioOptions.sweepHelp)

            Exit status: 0 when every run completed and every expectation holds; 1 when an expectation \
            fails or a run failed; 64 for a bad scenario or flag; 130 when interrupted (Ctrl-C, SIGTERM \
            or SIGHUP keeps every record taken so far and marks the run interrupted).

            \(ScenarioOptions.metricsHelp)
            """
    )

    @OptionGroup var options: ScenarioOptions

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
        let scenario = try self.options.loadScenario(command: "run")
        guard scenario.backends.count <= Scenario.realBackendLimit else {
            printError(
                "lbctl run: \(self.options.scenario): backends: \(scenario.backends.count) backends; a real run starts a process for each, "
                    + "at most \(Scenario.realBackendLimit) (lbctl sim takes up to \(Scenario.simulatedBackendLimit))"
            )
            throw ExitCode(64)
        }
        var settings = StudySettings(databasePath: self.options.db, outDirectory: self.out, executable: BuildInfo.executablePath, version: LBLabVersion.string)
        settings.containers = !self.noContainers
        settings.runtime = self.runtime == "docker" ? .docker(socket: self.dockerSocket) : .processes
        settings.repeats = try self.options.checkedRepeats()
        settings.duration = try self.options.duration(of: scenario)
        settings.labels = try self.options.labels(of: scenario)
        let study = Study(scenario: scenario, settings: settings)
        print("scenario \(scenario.name): \(scenario.question)")
        try await StudyOutput.run(command: "run", database: self.options.db, interrupt: { study.control.interrupt() }, study: study.run)
    }
}
