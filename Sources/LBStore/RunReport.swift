import Foundation
import GRDB
import LBCore

/// The figures of one run (DESIGN §7), computed from its raw rows in SQL: throughput, corrected and
/// service latency, errors by kind, each backend's share and the imbalance between them, retries per
/// request at the proxy, and how long the proxy took to eject and readmit a backend after a fault.
///
/// Only the measured window counts: requests due from the `phase measure` event (the end of the
/// warm-up) until `phase drain` (the end of the load); a run without phase events (plain `loadgen -db`)
/// counts all of its requests.
public struct RunReport: Sendable {
    /// The run.
    public var run: RunSummary
    /// The measured window, in microseconds since the run's start.
    public var window: ClosedRange<Int64>
    /// Requests due in the window.
    public var requests: Int
    /// Of those, requests that got a response (any status).
    public var responses: Int
    /// Requests that failed or got a 5xx.
    public var errors: Int
    /// Errors by kind (`refused`, `timeout`, `status 503`, …), most frequent first.
    public var errorsByKind: [(kind: String, count: Int)]
    /// Responses per second over the window.
    public var throughput: Double
    /// Latency from the intended send time (coordinated omission corrected), of responses.
    public var corrected: LatencySummary
    /// Latency from the actual send, of responses.
    public var service: LatencySummary
    /// Every backend of the run with the requests it served in the window.
    public var backends: [BackendShare]
    /// max / mean of the requests per backend in service at the start.
    public var imbalance: Double?
    /// Coefficient of variation (population standard deviation / mean) of the same.
    public var coefficientOfVariation: Double?
    /// Jain's fairness index of the same: (Σx)² / (n·Σx²), 1 when equal.
    public var jainIndex: Double?
    /// max / mean of the requests per backend within each second of the window, averaged over the
    /// seconds: the unevenness a backend feels moment to moment, which whole-run counts average away.
    public var imbalancePerSecond: Double?
    /// Retries per request at the proxy, when the proxy recorded its rows.
    public var retriesPerRequest: Double?
    /// Rows the proxy recorded in the window.
    public var proxyRequests: Int
    /// Seconds from the first kill or stop of a backend to the proxy marking it down or ejecting it.
    public var ejectSeconds: Double?
    /// Seconds from the first restart or resume of a backend to the proxy marking it up again.
    public var readmitSeconds: Double?
    /// Share of keys (`X-LBLab-Key`) served by another backend after the first backend was added than
    /// before it (see `remappedShare`).
    public var remappedOnAdd: Double?
    /// The same across the first removal of a backend.
    public var remappedOnRemove: Double?
    /// Where the requests' time went between the client, the proxy and the backends, when both sides
    /// recorded rows.
    public var hops: Hops?
    /// Share of the machine's CPU time the hypervisor took (steal) during the window, when the run
    /// sampled the host: above a few percent, latency figures say more about the host than the algorithm.
    public var hostSteal: Double?
    /// Seconds from the first `slow` or `errors` step on a backend until its share of the proxy's new
    /// picks fell below half its fair share and stayed there (``DivertMeasure``); infinite when it
    /// never did before the run (or that backend's next step) ended. Needs the proxy's rows.
    public var divertSeconds: Double? = nil
    /// Requests the proxy sent that backend from the step until then.
    public var divertRequests: Int? = nil

    /// Percentiles of a latency distribution, in microseconds (nearest rank).
    public struct LatencySummary: Sendable, Hashable {
        public var p50: Int64?
        public var p90: Int64?
        public var p99: Int64?
        public var p999: Int64?
        public var max: Int64?
        public var mean: Double?
    }

    /// The stretches of a request's life, from the rows of the client and the proxy joined on the request
    /// id, over the window's answered requests: what a scenario's `sim:` delays are measured from.
    public struct Hops: Sendable, Hashable {
        /// From the request's due time to the proxy's pick: the load generator's lag in sending it, and
        /// the way to the proxy (`sim: delays: client-proxy`, as a simulated client sends when due).
        public var clientToPick: Span
        /// From the pick to the start of the attempt that answered (connection and queue at the proxy).
        public var pickToUpstream: Span
        /// The answering attempt at the proxy: two proxy–backend hops and the backend's own time.
        public var upstream: Span
        /// From the answer at the proxy to the client's done (`sim: delays: proxy-client`).
        public var proxyToClient: Span
        /// Rows joined.
        public var requests: Int
    }

    /// The median, 99th percentile and mean of a stretch, in microseconds (what a `lognormal(p50,p99)`
    /// delay of `sim:` takes).
    public struct Span: Sendable, Hashable {
        public var p50: Int64?
        public var p99: Int64?
        public var mean: Double?
    }

    /// One backend's part of a run.
    public struct BackendShare: Sendable, Hashable {
        public var id: Int
        public var name: String
        /// Whether it was in the proxy's service when the run began.
        public var inServiceAtStart: Bool
        /// Requests it served in the window (as `X-LBLab-Backend` said).
        public var requests: Int
        /// Its share of the requests served by any backend.
        public var share: Double
        /// Its weight at the proxy when the run began.
        public var weight: Double
    }

    /// The largest gap between a backend's share and its weight's share, relative to the weight's
    /// share, over the backends in service at the start: 0 when every one served exactly its weight's
    /// part (0.1: one was 10% off).
    public var weightDeviation: Double? {
        let members = self.backends.filter(\.inServiceAtStart)
        let served = members.reduce(0) { $0 + $1.requests }
        let weights = members.reduce(0.0) { $0 + $1.weight }
        guard served > 0, weights > 0 else { return nil }
        return members.map { abs(Double($0.requests) / Double(served) / ($0.weight / weights) - 1) }.max()
    }
}

extension ResultsDatabase {
    /// The report of run `id`.
    public func report(runID id: Int64) throws(StoreError) -> RunReport {
        guard let run = try self.run(id: id) else { throw .noSuchRun(path: self.path, run: id) }
        return try self.report(run)
    }

    /// The report of `run`, a summary already read from this file. The records a run still recording
    /// has staged count as its rows (``readIncludingStaged(runID:_:)``): its figures so far.
    public func report(_ run: RunSummary) throws(StoreError) -> RunReport {
        try self.readIncludingStaged(runID: run.id) { db, _ in try Self.report(run, db) }
    }

    private static func report(_ run: RunSummary, _ db: Database) throws -> RunReport {
        if let totals = try Self.totals(runID: run.id, db) { return try Self.report(run, totals: totals, db) }
        let id = run.id
        let phases = try Row.fetchAll(db, sql: "SELECT subject, min(t_us) AS t FROM events WHERE run_id = ? AND kind = 'phase' GROUP BY subject", arguments: [id])
        let phase = Dictionary(uniqueKeysWithValues: phases.map { ($0["subject"] as String, $0["t"] as Int64) })
        let bounds = try Row.fetchOne(db, sql: "SELECT min(intended_us) AS first, max(done_us) AS last FROM requests WHERE run_id = ?", arguments: [id])
        let first: Int64? = bounds?["first"]
        let last: Int64? = bounds?["last"]
        let start: Int64 = phase["measure"] ?? first ?? 0
        let end: Int64 = max(start, phase["drain"] ?? last ?? start)
        let window = start...end
        let inWindow = "run_id = ? AND intended_us >= ? AND intended_us <= ?"
        let arguments: StatementArguments = [id, start, end]

        let counts = try Row.fetchOne(
            db,
            sql: """
                SELECT count(*) AS requests, count(status) AS responses,
                    sum(CASE WHEN error IS NOT NULL OR status >= 500 THEN 1 ELSE 0 END) AS errors
                FROM requests WHERE \(inWindow)
                """,
            arguments: arguments
        )
        let requests: Int = counts?["requests"] ?? 0
        let responses: Int = counts?["responses"] ?? 0
        let kinds = try Row.fetchAll(
            db,
            sql: """
                SELECT COALESCE(error, 'status ' || status) AS kind, count(*) AS n FROM requests
                WHERE \(inWindow) AND (error IS NOT NULL OR status >= 500) GROUP BY kind ORDER BY n DESC, kind
                """,
            arguments: arguments
        ).map { (kind: $0["kind"] as String, count: $0["n"] as Int) }

        let served = try Row.fetchAll(
            db,
            sql: "SELECT backend_id, count(*) AS n FROM requests WHERE \(inWindow) AND backend_id IS NOT NULL GROUP BY backend_id",
            arguments: arguments
        )
        let servedBy = Dictionary(uniqueKeysWithValues: served.map { ($0["backend_id"] as Int, $0["n"] as Int) })
        let totalServed = max(1, servedBy.values.reduce(0, +))
        let backends = try Self.backendShares(db, runID: id, servedBy: servedBy, total: totalServed)
        let spread = Self.spread(backends.filter(\.inServiceAtStart).map { Double($0.requests) })
        let perSecond = try Self.imbalancePerSecond(db, arguments, inWindow, backends: backends.filter(\.inServiceAtStart).map(\.id), start: start)

        let proxy = try Row.fetchOne(
            db,
            sql: "SELECT count(*) AS n, avg(attempts - 1) AS retries FROM proxy_requests WHERE run_id = ? AND received_us >= ? AND received_us <= ?",
            arguments: arguments
        )
        let proxyRequests: Int = proxy?["n"] ?? 0
        let windowSeconds = Double(max(1, end - start)) / 1e6
        var report = RunReport(
            run: run,
            window: window,
            requests: requests,
            responses: responses,
            errors: counts?["errors"] ?? 0,
            errorsByKind: kinds,
            throughput: Double(responses) / windowSeconds,
            corrected: try Self.latency("done_us - intended_us", db, inWindow, arguments, responses),
            service: try Self.latency("done_us - sent_us", db, inWindow, arguments, responses),
            backends: backends,
            imbalance: spread?.imbalance,
            coefficientOfVariation: spread?.cov,
            jainIndex: spread?.jain,
            imbalancePerSecond: perSecond,
            retriesPerRequest: proxyRequests > 0 ? proxy?["retries"] : nil,
            proxyRequests: proxyRequests,
            ejectSeconds: try Self.reaction(db, id, faults: ["kill", "stop"], reactions: ["health_down", "ejected"]),
            readmitSeconds: try Self.reaction(db, id, faults: ["restart", "resume", "health_on"], reactions: ["health_up", "readmitted"]),
            remappedOnAdd: try Self.remappedShare(db, runID: id, change: "add", window: window),
            remappedOnRemove: try Self.remappedShare(db, runID: id, change: "remove", window: window),
            hops: proxyRequests > 0 ? try Self.hops(db, arguments, start: start, end: end) : nil,
            hostSteal: try Self.hostSteal(db, runID: id, window: window)
        )
        if let divert = try Self.divert(db, runID: id) {
            report.divertSeconds = divert.seconds
            report.divertRequests = divert.requests
        }
        return report
    }

    /// The stretches of ``Hops`` over the window's answered requests that the proxy recorded.
    private static func hops(_ db: Database, _ arguments: StatementArguments, start: Int64, end: Int64) throws -> RunReport.Hops? {
        let joined = """
            SELECT q.intended_us AS due, q.done_us AS done, p.picked_us AS picked, p.upstream_start_us AS up_start,
                p.upstream_done_us AS up_done
            FROM requests q JOIN proxy_requests p ON p.run_id = q.run_id AND p.request_id = q.id
            WHERE q.run_id = ? AND q.intended_us >= ? AND q.intended_us <= ? AND q.status IS NOT NULL
                AND p.picked_us IS NOT NULL AND p.upstream_start_us IS NOT NULL AND p.upstream_done_us IS NOT NULL
            """
        try db.execute(sql: "DROP TABLE IF EXISTS temp.hops")
        defer { try? db.execute(sql: "DROP TABLE IF EXISTS temp.hops") }
        try db.execute(
            sql: """
                CREATE TEMP TABLE hops AS SELECT picked - due AS client_pick, up_start - picked AS pick_up,
                    up_done - up_start AS upstream, done - up_done AS proxy_client FROM (\(joined))
                """,
            arguments: arguments
        )
        let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM temp.hops") ?? 0
        guard count > 0 else { return nil }
        func span(_ column: String) throws -> RunReport.Span {
            let rank = { (percent: Int) in max(1, (count * percent + 99) / 100) - 1 }
            let value = { (offset: Int) in
                try Int64.fetchOne(db, sql: "SELECT \(column) FROM temp.hops ORDER BY \(column) LIMIT 1 OFFSET ?", arguments: [offset])
            }
            return RunReport.Span(
                p50: try value(rank(50)),
                p99: try value(rank(99)),
                mean: try Double.fetchOne(db, sql: "SELECT avg(\(column)) FROM temp.hops")
            )
        }
        return RunReport.Hops(
            clientToPick: try span("client_pick"), pickToUpstream: try span("pick_up"), upstream: try span("upstream"),
            proxyToClient: try span("proxy_client"), requests: count
        )
    }

    /// The report of a run that stored ``RunTotals`` instead of rows: the same figures, read from them.
    private static func report(_ run: RunSummary, totals: RunTotals, _ db: Database) throws -> RunReport {
        let id = run.id
        let window = totals.window
        let servedBy = Dictionary(uniqueKeysWithValues: totals.backends.compactMap { part in part.backendID.map { ($0, part.requests) } })
        let totalServed = max(1, servedBy.values.reduce(0, +))
        let backends = try Self.backendShares(db, runID: id, servedBy: servedBy, total: totalServed)
        let spread = Self.spread(backends.filter(\.inServiceAtStart).map { Double($0.requests) })
        let windowSeconds = Double(max(1, window.upperBound - window.lowerBound)) / 1e6
        return RunReport(
            run: run,
            window: window,
            requests: totals.run.requests,
            responses: totals.run.responses,
            errors: totals.run.errors,
            errorsByKind: totals.errorsByKind.map { (kind: $0.key, count: $0.value) }
                .sorted { $0.count != $1.count ? $0.count > $1.count : $0.kind < $1.kind },
            throughput: Double(totals.run.responses) / windowSeconds,
            corrected: Self.latency(totals.run.corrected),
            service: Self.latency(totals.run.service),
            backends: backends,
            imbalance: spread?.imbalance,
            coefficientOfVariation: spread?.cov,
            jainIndex: spread?.jain,
            imbalancePerSecond: totals.imbalancePerSecond,
            retriesPerRequest: totals.proxyRequests > 0 ? Double(totals.retries) / Double(totals.proxyRequests) : nil,
            proxyRequests: totals.proxyRequests,
            ejectSeconds: try Self.reaction(db, id, faults: ["kill", "stop"], reactions: ["health_down", "ejected"]),
            readmitSeconds: try Self.reaction(db, id, faults: ["restart", "resume", "health_on"], reactions: ["health_up", "readmitted"]),
            remappedOnAdd: totals.remappedOnAdd,
            remappedOnRemove: totals.remappedOnRemove,
            hops: nil,
            hostSteal: try Self.hostSteal(db, runID: id, window: window)
        )
    }

    /// Nearest-rank percentiles and the mean of a histogram of totals, as ``latency(_:_:_:_:_:)`` takes
    /// them from rows.
    static func latency(_ latency: RunTotals.Latency) -> RunReport.LatencySummary {
        let count = latency.count
        guard count > 0 else { return RunReport.LatencySummary() }
        return RunReport.LatencySummary(
            p50: latency.value(atPercentile: 50), p90: latency.value(atPercentile: 90), p99: latency.value(atPercentile: 99),
            p999: latency.value(atPercentile: 99.9), max: latency.value(atRank: count),
            mean: Double(latency.sumMicros) / Double(count)
        )
    }

    /// Every backend of run `id` with the requests `servedBy` says it served.
    private static func backendShares(_ db: Database, runID id: Int64, servedBy: [Int: Int], total: Int) throws -> [RunReport.BackendShare] {
        try Row.fetchAll(
            db,
            sql: "SELECT id, name, weight, COALESCE(json_extract(spec_json, '$.in_service'), 1) AS in_service FROM backends WHERE run_id = ? ORDER BY id",
            arguments: [id]
        ).map { row in
            let backendID: Int = row["id"]
            let count = servedBy[backendID] ?? 0
            return RunReport.BackendShare(
                id: backendID, name: row["name"], inServiceAtStart: (row["in_service"] as Int?) != 0, requests: count,
                share: Double(count) / Double(total), weight: row["weight"]
            )
        }
    }

    /// Steal time over the window as a share of all CPUs' time (CPU count from `params_json.host_cpus`).
    private static func hostSteal(_ db: Database, runID: Int64, window: ClosedRange<Int64>) throws -> Double? {
        let row = try Row.fetchOne(
            db,
            sql: """
                SELECT max(cpu_throttled_us) - min(cpu_throttled_us) AS steal, max(t_us) - min(t_us) AS span,
                    (SELECT json_extract(params_json, '$.host_cpus') FROM runs WHERE id = ?) AS cpus
                FROM samples WHERE run_id = ? AND source = 'host' AND t_us >= ? AND t_us <= ?
                """,
            arguments: [runID, runID, window.lowerBound, window.upperBound]
        )
        guard let steal: Int64 = row?["steal"], let span: Int64 = row?["span"], span > 0, let cpus: Int = row?["cpus"], cpus > 0 else { return nil }
        return Double(steal) / (Double(span) * Double(cpus))
    }

    /// Nearest-rank percentiles and the mean of `expression` over the responses in the window, in one
    /// sorted pass.
    private static func latency(
        _ expression: String,
        _ db: Database,
        _ inWindow: String,
        _ arguments: StatementArguments,
        _ count: Int
    ) throws -> RunReport.LatencySummary {
        guard count > 0 else { return RunReport.LatencySummary() }
        let ranks = [50.0, 90, 99, 99.9].map { max(1, Int((Double(count) * $0 / 100).rounded(.up))) } + [count]
        let placeholders = ranks.map { _ in "?" }.joined(separator: ", ")
        var rankArguments = arguments
        rankArguments += StatementArguments(ranks)
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT v, rn FROM (
                    SELECT \(expression) AS v, row_number() OVER (ORDER BY \(expression)) AS rn
                    FROM requests WHERE \(inWindow) AND status IS NOT NULL
                ) WHERE rn IN (\(placeholders))
                """,
            arguments: rankArguments
        )
        let byRank = Dictionary(uniqueKeysWithValues: rows.map { ($0["rn"] as Int, $0["v"] as Int64) })
        let mean = try Double.fetchOne(db, sql: "SELECT avg(\(expression)) FROM requests WHERE \(inWindow) AND status IS NOT NULL", arguments: arguments)
        return RunReport.LatencySummary(
            p50: byRank[ranks[0]], p90: byRank[ranks[1]], p99: byRank[ranks[2]], p999: byRank[ranks[3]], max: byRank[ranks[4]], mean: mean
        )
    }

    /// The mean over the window's whole seconds of each second's max/mean requests per backend (the
    /// backends in service at the start, a backend that served nothing in a second counting 0).
    private static func imbalancePerSecond(
        _ db: Database,
        _ arguments: StatementArguments,
        _ inWindow: String,
        backends: [Int],
        start: Int64
    ) throws -> Double? {
        guard !backends.isEmpty else { return nil }
        var counts: [Int64: [Int: Double]] = [:]
        var startArguments = StatementArguments([start])
        startArguments += arguments
        for row in try Row.fetchAll(
            db,
            sql: "SELECT (intended_us - ?) / 1000000 AS second, backend_id, count(*) AS n FROM requests WHERE \(inWindow) AND backend_id IS NOT NULL GROUP BY second, backend_id",
            arguments: startArguments
        ) {
            counts[row["second"], default: [:]][row["backend_id"]] = row["n"]
        }
        // The last second is partial: left out when there are others.
        let seconds = counts.keys.sorted()
        let whole = seconds.count > 1 ? Array(seconds.dropLast()) : seconds
        let ratios = whole.compactMap { second in Self.spread(backends.map { counts[second]?[$0] ?? 0 })?.imbalance }
        return ratios.isEmpty ? nil : ratios.reduce(0, +) / Double(ratios.count)
    }

    /// max/mean, CoV and Jain's index of per-backend counts.
    static func spread(_ counts: [Double]) -> (imbalance: Double, cov: Double, jain: Double)? {
        guard !counts.isEmpty else { return nil }
        let sum = counts.reduce(0, +)
        guard sum > 0 else { return nil }
        let mean = sum / Double(counts.count)
        let variance = counts.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(counts.count)
        let squares = counts.reduce(0) { $0 + $1 * $1 }
        return (counts.max()! / mean, variance.squareRoot() / mean, sum * sum / (Double(counts.count) * squares))
    }

}
