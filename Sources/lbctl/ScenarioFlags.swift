import ArgumentParser
import LBCLI
import LBConfig
import LBCore
import LBHarness

/// The flags `lbctl run` and `lbctl sim` share, read against the scenario they apply to.
struct ScenarioOptions: ParsableArguments {
    @Option(name: .goStyle("scenario"), help: "The scenario file (scenarios/NAME.yml).")
    var scenario: String

    @Option(name: .goStyle("db"), help: "The results file (SQLite), created when missing.")
    var db = "lblab.db"

    @Option(name: .goStyle("algorithms"), help: "Only these of the scenario's algorithms, by label or alias, comma-separated.")
    var algorithms: String?

    @Option(name: .goStyle("repeat"), help: "Repeats of each algorithm (overrides the scenario's repeats).")
    var repeats: Int?

    @Option(name: .goStyle("duration"), help: "Length of each run's load (overrides the scenario's duration), e.g. 10s; virtual time for lbctl sim.")
    var duration: String?

    /// What a sweep does, for the commands' help.
    static let sweepHelp = """
        A scenario's sweep: runs every point x algorithm x repeat (repeat k of every algorithm with the \
        same seed). Rates given as shares of capacity (0.5c) follow a capacity probe, recorded as runs \
        of least-connections. A sweep of one field gives each algorithm's knee of p99 (Kneedle) and, \
        with an slo:, its throughput at that service level (lbctl sim refines it by bisection).
        """

    /// The metrics `expect:` can name, for the commands' help.
    static let metricsHelp = """
        Metrics for expect (each the mean over an algorithm's repeats):
        \(ExpectedOutcome.Metric.allCases.map { "  \($0.rawValue): \($0.summary)" }.joined(separator: "\n"))

        An expectation followed by "with confidence" (or "with 99% confidence") is judged on the paired \
        difference instead of the means: both sides per repeat (repeat k of every algorithm has the same \
        seed), and e.g. "p99(a) < p99(b) with confidence" holds when the BCa bootstrap 95% interval of the \
        mean of p99(a) - p99(b) is below zero. It needs two repeats or more.
        """

    /// The scenario; a mistake is printed with file, line and field and exits 64.
    func loadScenario(command: String) throws -> Scenario {
        do {
            return try Scenario.load(path: self.scenario)
        } catch {
            printError("lbctl \(command): \(error)")
            throw ExitCode(64)
        }
    }

    /// `--algorithms`: labels of the scenario's matrix, by label or by any name of its algorithm.
    func labels(of scenario: Scenario) throws -> [String]? {
        try self.algorithms.map { text in
            try text.split(separator: ",").map { name in
                let given = name.trimmingCharacters(in: .whitespaces)
                let label = scenario.labels.contains(given) ? given : Algorithm(name: given)?.name ?? given
                try requireFlag("algorithms", scenario.labels.contains(label), "\"\(given)\" is not one of the scenario's: \(scenario.labels.joined(separator: ", "))")
                return label
            }
        }
    }

    /// `--duration`: longer than the scenario's warm-up; timeline steps it cuts off are noted.
    func duration(of scenario: Scenario) throws -> Duration? {
        guard let text = self.duration else { return nil }
        let duration = try flagValue("duration") { try GoDuration.parse(text) }
        try requireFlag("duration", duration > scenario.warmup, "must be longer than the scenario's warm-up (\(GoDuration.format(scenario.warmup)))")
        for step in scenario.timeline where step.at >= duration {
            printError("note: the timeline step at \(GoDuration.format(step.at)) (line \(step.line)) falls after -duration and will not happen")
        }
        return duration
    }

    /// `--repeat`: 1 to 1,000.
    func checkedRepeats() throws -> Int? {
        try self.repeats.map { repeats in
            try requireFlag("repeat", (1...1_000).contains(repeats), "must be between 1 and 1000, got \(repeats)")
            return repeats
        }
    }
}

/// How `lbctl run` and `lbctl sim` end: the comparison, warnings, the verdicts of `expect:`, where the
/// runs are, and the exit status (0 when every run completed and every expectation holds, 1 when not,
/// 130 when interrupted).
enum StudyOutput {
    /// Runs `study` with a progress line, Ctrl-C (or SIGTERM, or SIGHUP) calling `interrupt`, then
    /// ends as ``finish(_:database:)`` says; a study that cannot start is `lbctl COMMAND: error`, exit 1.
    static func run(
        command: String,
        database: String,
        interrupt: @escaping @Sendable () -> Void,
        study: (@escaping @Sendable (String) -> Void, @escaping @Sendable (String?) -> Void) async throws(HarnessError) -> StudyResult
    ) async throws {
        let progress = ProgressLine()
        let forwarder = SignalForwarder(hangup: true, interrupt)
        defer { forwarder.cancel() }
        let result: StudyResult
        do {
            result = try await study(
                { line in
                    progress.clear()
                    printError(line)
                },
                { line in
                    if let line { progress.show(line) } else { progress.clear() }
                }
            )
        } catch {
            printError("lbctl \(command): \(error)")
            throw ExitCode.failure
        }
        try Self.finish(result, database: database)
    }

    static func finish(_ result: StudyResult, database: String) throws {
        print("")
        print(result.comparison.table())
        if result.comparison.hasRepeats || !result.comparison.points.isEmpty { print("\n" + result.comparison.statisticsText()) }
        let figures = result.comparison.sweepFiguresText()
        if !figures.isEmpty { print("\n" + figures) }
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
        print("\nrecorded in \(database): runs \(result.outcomes.compactMap(\.runID).map(String.init).joined(separator: ", ")) (lbctl report, lbctl export)")
        if result.interrupted { throw ExitCode(130) }
        if !result.succeeded { throw ExitCode.failure }
    }
}
