import ArgumentParser
import Foundation
import LBCLI
import LBConfig
import LBHarness
import LBStore

/// `lbctl runs`: every run in a results file.
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "List the runs in a results file.")

    @Option(name: .goStyle("db"), help: "The results file.")
    var db = "lblab.db"

    func run() throws {
        let database = try openExisting(self.db)
        let runs = try database.runs()
        var rows = [["id", "kind", "scenario", "algorithm", "repeat", "status", "started", "seconds", "requests", "staged", "dropped"]]
        for run in runs {
            rows.append([
                "\(run.id)", run.kind, run.scenario ?? "-", run.algorithm ?? "-", "\(run.repeat + 1)", run.status.rawValue, run.startedAt,
                run.durationMicros.map { String(format: "%.1f", Double($0) / 1e6) } ?? "-", run.countedRequests.map { "\($0) counted" } ?? "\(run.requestCount)",
                "\(run.stagedRequestCount)", "\(run.droppedRecords)",
            ])
        }
        print(runs.isEmpty ? "\(self.db): no runs yet" : Comparison.render(rows))
    }
}

/// `lbctl report [RUN…]`: the figures of runs, computed from their raw rows.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print each run's throughput, latency percentiles, errors, backend shares, imbalance, retries and fault reactions.",
        discussion: "Without RUN ids, every run of the file."
    )

    @Option(name: .goStyle("db"), help: "The results file.")
    var db = "lblab.db"

    @Argument(help: "Run ids (see lbctl runs).")
    var runs: [Int64] = []

    @Flag(name: .goStyle("seconds"), help: "Also each second from the load's start: requests, errors, p50 and p99, each backend's share, the CPU of each backend and the proxy (t: throttled), the events.")
    var seconds = false

    func run() throws {
        let database = try openExisting(self.db)
        // Without ids, every run, from the summaries read once.
        let summaries = self.runs.isEmpty ? try database.runs() : []
        if self.runs.isEmpty && summaries.isEmpty { print("\(self.db): no runs yet") }
        do {
            for id in summaries.map(\.id) + self.runs {
                print(try database.report(runID: id).text + "\n")
                if self.seconds { print("run \(id) second by second:\n" + (try database.seconds(runID: id)).text() + "\n") }
            }
        } catch {
            printError("lbctl report: \(error)")
            throw ExitCode.failure
        }
    }
}

/// `lbctl compare --scenario NAME`: the scenario's algorithms side by side over their repeats.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Put a scenario's algorithms side by side: each figure's mean and standard deviation over the repeats, its 95% confidence interval, and the paired difference between each two algorithms.",
        discussion: """
            Runs that did not complete are left out. Real and simulated runs of the scenario in the same file are \
            shown apart, each algorithm as ALGORITHM [real] and ALGORITHM [sim]. Intervals are BCa bootstrap \
            intervals of the mean over the repeats (10,000 resamples, seeded: the same runs give the same \
            intervals). Repeat k of every algorithm runs with the same seed, so differences are paired run \
            against run of the same seed.
            """
    )

    @Option(name: .goStyle("db"), help: "The results file.")
    var db = "lblab.db"

    @Option(name: .goStyle("scenario"), help: "The scenario's name (or its file).")
    var scenario: String

    @Option(name: .goStyle("metric"), help: "A metric a sweep's grids show (repeatable; default p99 and throughput): one of expect's metrics.")
    var metrics: [String] = []

    func validate() throws {
        for metric in self.metrics {
            try requireFlag("metric", ExpectedOutcome.Metric(rawValue: metric) != nil, "\"\(metric)\" is not a metric; known: \(ExpectedOutcome.Metric.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        let database = try openExisting(self.db)
        let name = ((self.scenario as NSString).lastPathComponent as NSString).deletingPathExtension
        let runs = try database.runs().filter { $0.scenario == name && $0.status == .completed }
        guard !runs.isEmpty else {
            printError("lbctl compare: \(self.db) has no completed runs of scenario \(name)")
            throw ExitCode.failure
        }
        var comparison = Comparison(reports: try runs.map(database.report))
        // The scenario as its runs recorded it, for its service level.
        if let text = try database.configText(runID: runs[runs.count - 1].id) {
            comparison.serviceLevel = try? Scenario.parse(text, file: name + ".yml").serviceLevel
        }
        print("scenario \(name): \(runs.count) completed runs\n")
        print(comparison.table())
        let metrics = self.metrics.compactMap(ExpectedOutcome.Metric.init(rawValue:))
        print("\n" + comparison.statisticsText(metrics: metrics.isEmpty ? [.p99, .throughput] : metrics))
        let figures = comparison.sweepFiguresText()
        if !figures.isEmpty { print("\n" + figures) }
    }
}

/// `lbctl export --format csv --out DIR [--run ID]`: one CSV per table.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write one CSV file per table (runs, backends, requests, proxy_requests, samples, events, and the totals, totals_latency and totals_errors of runs that kept no rows), RFC 4180 with a header row."
    )

    @Option(name: .goStyle("db"), help: "The results file.")
    var db = "lblab.db"

    @Option(name: .goStyle("format"), help: "The format: csv.")
    var format = "csv"

    @Option(name: .goStyle("out"), help: "The directory the files go to.")
    var out = "results"

    @Option(name: .goStyle("run"), help: "Only this run's rows.")
    var runID: Int64?

    func validate() throws {
        try requireFlag("format", self.format == "csv", "\"\(self.format)\" is not a format this version writes; use csv")
    }

    func run() throws {
        let database = try openExisting(self.db)
        do {
            for file in try database.exportCSV(to: self.out, runID: self.runID) {
                print("\(file.path): \(file.rows) rows")
            }
        } catch {
            printError("lbctl export: \(error)")
            throw ExitCode.failure
        }
    }
}

/// Opens a results file that must already exist (reading commands never create one).
func openExisting(_ path: String) throws -> ResultsDatabase {
    guard FileManager.default.fileExists(atPath: path) else {
        throw ValidationError("-db: \(path) does not exist; run lbctl run or loadgen -db first")
    }
    return try flagValue("db") { try ResultsDatabase.open(path: path) }
}
