public import Foundation
import GRDB
import LBBuildStamp

/// What a run records about itself at its start, so that it can be repeated (DESIGN §7): the `runs`
/// row less what is only known at the end.
public struct RunInfo: Sendable, Hashable {
    /// Where the records come from.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// A real experiment: proxy, backends and load on this machine (`lbctl run`).
        case real
        /// A simulated run in virtual time (`lbctl sim`).
        case sim
        /// The load generator alone against a target (`loadgen -db`).
        case loadgen
    }

    /// Where the records come from.
    public var kind: Kind
    /// The scenario's name, when run from one.
    public var scenario: String?
    /// The algorithm under test, when known.
    public var algorithm: String?
    /// Which repeat of the same configuration this is (0-based).
    public var `repeat`: Int = 0
    /// The seed every random choice of the run derives from.
    public var seed: UInt64?
    /// The sweep point's parameters as JSON, or the command's settings.
    public var paramsJSON: String?
    /// The wall-clock start.
    public var startedAt: Date
    /// The configuration or scenario text the run used.
    public var configYAML: String?
    /// SHA-256 of ``configYAML``.
    public var configSHA256: String?
    /// The commit the recording binary was built from (``BuildStamp``), when built from a checkout.
    public var gitCommit: String?
    /// Whether that binary's work tree had changes not in ``gitCommit``, when known.
    public var gitModified: Bool?
    /// The machine's host name.
    public var host: String?
    /// The LBLab version.
    public var lblabVersion: String?

    /// A run of `kind` starting at `startedAt`, made by this binary (its ``BuildStamp``); the other
    /// fields may be set afterwards.
    public init(kind: Kind, startedAt: Date = Date()) {
        self.kind = kind
        self.startedAt = startedAt
        self.gitCommit = BuildStamp.commit
        self.gitModified = BuildStamp.treeModified
    }

    /// `date` as stored in `runs.started_at`: ISO 8601 in UTC with milliseconds.
    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true)
            .timeSeparator(.colon).timeZone(separator: .omitted))
    }
}

/// How a run ended, as `runs.status` stores it.
public enum RunStatus: String, Sendable, Hashable, Codable {
    /// Still going (or the process died without saying otherwise).
    case running
    /// Ran its whole course.
    case completed
    /// Stopped early by Ctrl-C or SIGTERM; every record taken until then is kept.
    case interrupted
    /// Stopped by an error.
    case failed
}

/// One line of `lbctl runs`: a run's identity, outcome and size.
public struct RunSummary: Sendable, Hashable {
    /// The run's id in this file.
    public var id: Int64
    /// The run's globally unique id.
    public var uuid: String
    /// `real`, `sim` or `loadgen`.
    public var kind: String
    /// The scenario's name, if any.
    public var scenario: String?
    /// The algorithm, if any.
    public var algorithm: String?
    /// The repeat number.
    public var `repeat`: Int
    /// The seed its random choices derived from, when recorded.
    public var seed: UInt64?
    /// Its parameters as JSON (`runs.params_json`): the algorithm's, and a sweep point's.
    public var paramsJSON: String?
    /// How it ended.
    public var status: RunStatus
    /// The wall-clock start as stored.
    public var startedAt: String
    /// Its length, once finished.
    public var durationMicros: Int64?
    /// Records the store could not keep up with.
    public var droppedRecords: Int64
    /// Client-side request rows.
    public var requestCount: Int64
    /// Client-side request records not yet rows: packed in `staged_records` while their run records
    /// (``RunRecorder``), or left there by a process on another host or one whose chunks could not be
    /// read.
    public var stagedRequestCount: Int64
    /// Requests the run counted in its measured window, when it kept no rows but ``RunTotals``.
    public var countedRequests: Int64?

    init(row: Row) {
        self.id = row["id"]
        self.uuid = row["uuid"]
        self.kind = row["kind"]
        self.scenario = row["scenario"]
        self.algorithm = row["algorithm"]
        self.repeat = row["repeat"]
        self.seed = (row["seed"] as Int64?).map { UInt64(bitPattern: $0) }
        self.paramsJSON = row["params_json"]
        self.status = RunStatus(rawValue: row["status"]) ?? .failed
        self.startedAt = row["started_at"]
        self.durationMicros = row["duration_us"]
        self.droppedRecords = row["dropped_records"]
        self.requestCount = row["request_count"]
        self.stagedRequestCount = row["staged_request_count"]
        self.countedRequests = row["counted_requests"]
    }
}
