import Foundation
import LBConfig
import LBCore
import LBStore

extension Scenario {
    /// The algorithms a study runs: those labelled in `labels` (`--algorithms`), in the scenario's
    /// order, or all of them.
    func algorithms(labelled labels: [String]?) -> [AlgorithmUnderTest] {
        guard let labels else { return self.algorithms }
        return self.algorithms.filter { labels.contains($0.label) }
    }

    /// The `runs` row of one run of `entry`, repeat `repeatIndex` with `seed`, by a runner of `kind`:
    /// what it needs to be repeated (the scenario's text and hash, the seed, the host, the version; the
    /// commit comes with ``RunInfo``), with `parameters` as the sweep point's `params_json` beside the
    /// algorithm's name and parameters.
    func runInfo(
        kind: RunInfo.Kind,
        entry: AlgorithmUnderTest,
        repeatIndex: Int,
        seed: UInt64,
        parameters: [String: Any],
        version: String
    ) -> RunInfo {
        var info = RunInfo(kind: kind)
        info.scenario = self.name
        info.algorithm = entry.label
        info.repeat = repeatIndex
        info.seed = seed
        var params = parameters
        params["algorithm"] = entry.algorithm.name
        if let point = self.point {
            // The sweep point: its number, each field's value as the sweep gives it, and the capacity
            // its shares were taken of.
            params["point"] = point.index
            params["point_label"] = point.description
            params["sweep"] = Dictionary(uniqueKeysWithValues: point.values.map { ($0.path, $0.value.description) })
            if let capacity = self.capacity { params["capacity"] = capacity }
        }
        if let given = entry.parametersYAML { params["parameters"] = given }
        info.paramsJSON = JSONText.encode(params)
        info.configYAML = self.text
        info.configSHA256 = ConfigHash.sha256Hex(self.text)
        info.host = ProcessInfo.processInfo.hostName
        info.lblabVersion = version
        return info
    }
}

extension StudyResult {
    /// The result of a study whose runs ended as `outcomes` in `database`: each run's report from the
    /// file, the comparison, and the verdicts of `scenario`'s expectations about the algorithms that
    /// ran (those about one left out with `--algorithms` cannot be told, and are left out).
    /// The runs of a service-level search (`searchRuns`) are compared too, for the throughput at the
    /// service level.
    init(
        scenario: Scenario,
        outcomes: [RunOutcome],
        searchRuns: [Int64] = [],
        database: ResultsDatabase,
        interrupted: Bool,
        warnings: ([RunReport]) -> [String] = { _ in [] }
    ) {
        var reports: [RunReport] = []
        for id in outcomes.compactMap(\.runID) + searchRuns {
            if let report = try? database.report(runID: id) { reports.append(report) }
        }
        var comparison = Comparison(reports: reports)
        comparison.serviceLevel = scenario.serviceLevel
        let ran = Set(outcomes.map(\.label))
        let expectations = scenario.expectations.filter { expectation in
            (expectation.lhs.metrics + expectation.rhs.metrics).allSatisfy { ran.contains(ExpectedOutcome.split($0.1).label) }
        }
        self.init(
            outcomes: outcomes, comparison: comparison, verdicts: comparison.verdicts(expectations), warnings: warnings(reports),
            interrupted: interrupted
        )
    }
}

extension ResultsDatabase {
    /// The results file of a study at `path`, created when new, or the store's error as a harness error.
    static func openForStudy(path: String) throws(HarnessError) -> ResultsDatabase {
        do {
            return try ResultsDatabase.open(path: path)
        } catch {
            throw .store("\(error)")
        }
    }
}
