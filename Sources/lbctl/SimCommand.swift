import ArgumentParser
import LBCLI
import LBConfig
import LBCore
import LBHarness

/// `lbctl sim --scenario scenarios/NAME.yml`: the scenario in virtual time, every algorithm × repeat
/// recorded as runs of kind `sim` in the same file as real runs, then the comparison and the verdicts.
struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Simulate a scenario in virtual time: the same algorithms, recorded as runs of kind sim, compared and checked.",
        discussion: """
            The proxy's pickers and backend state, the backends' places and queues, the load's arrival \
            schedule and keys are the code lbctl run uses; time is virtual, so a run takes as long as \
            its events take to compute. The scenario's sim: section sets the delays between client, \
            proxy and backends (one way, latency models; a real run's proxy_requests beside its \
            requests measures them):

              sim:
                delays: {client-proxy: 300us, proxy-backend: 20us, proxy-client: 200us}

            \(ScenarioOptions.sweepHelp)

            Exit status: 0 when every run completed and every expectation holds; 1 when an expectation \
            fails or a run failed; 64 for a bad scenario or flag; 130 when interrupted (Ctrl-C or \
            SIGTERM keeps every record taken so far and marks the run interrupted).

            \(ScenarioOptions.metricsHelp)
            """
    )

    @OptionGroup var options: ScenarioOptions

    @Option(name: .goStyle("seed"), help: "The seed (overrides the scenario's); repeat k runs with seed + k.")
    var seed: UInt64?

    @Option(name: .goStyle("requests"), help: "Stop each run's load after this many requests, whatever its duration.")
    var requests: Int?

    @Option(name: .goStyle("scale"), help: "Multiply the clients, the rate and the backends by K (backend b becomes b, b.2, … b.K).")
    var scale = 1

    @Flag(name: .goStyle("no-records"), help: "Keep no row per request: runs, backends, events and samples, and the totals lbctl report reads instead (counts, shares, errors, the latency histogram), counted as the run goes.")
    var noRecords = false

    func run() async throws {
        let scenario = try self.options.loadScenario(command: "sim")
        var settings = SimStudySettings(databasePath: self.options.db, version: LBLabVersion.string)
        settings.repeats = try self.options.checkedRepeats()
        settings.duration = try self.options.duration(of: scenario)
        settings.labels = try self.options.labels(of: scenario)
        settings.seed = try self.seed.map { seed in
            try requireFlag("seed", seed <= UInt64(Int.max), "must be at most \(Int.max), got \(seed)")
            return seed
        }
        settings.requests = try self.requests.map { requests in
            try requireFlag("requests", requests >= 1, "must be at least 1, got \(requests)")
            return requests
        }
        try requireFlag("scale", (1...10_000).contains(self.scale), "must be between 1 and 10000, got \(self.scale)")
        try requireFlag(
            "scale", scenario.backends.count * self.scale <= Scenario.simulatedBackendLimit,
            "\(scenario.backends.count) backends x \(self.scale) is over \(Scenario.simulatedBackendLimit)"
        )
        settings.scale = self.scale
        settings.keepsRecords = !self.noRecords
        let study = SimStudy(scenario: scenario, settings: settings)
        print("scenario \(scenario.name) (simulated): \(scenario.question)")
        try await StudyOutput.run(command: "sim", database: self.options.db, interrupt: { study.interrupt() }, study: study.run)
    }
}
