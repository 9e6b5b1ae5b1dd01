import ArgumentParser
import Foundation
import LBCLI
import LBConfig
import LBCore
import LBProxy
import LBStore

/// `lbctl proxy`: the reverse proxy, from `--config config.yml` or from quick flags, until SIGINT or
/// SIGTERM; then it stops accepting, lets requests in flight finish (`shutdown-grace`) and exits 0.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run the HTTP/1.1 reverse proxy.",
        discussion: """
            With --config, everything comes from the file (see config.yml). Without it, the flags make one \
            service: lbctl proxy -listen 127.0.0.1:8080 -backend 127.0.0.1:9001 -backend 127.0.0.1:9002 -algo LC -t 5. \
            Without -backend the service starts empty and backends join through the admin API \
            (POST /register {"address": "http://127.0.0.1:9001", "weight": 1}, or POST /backends). \
            --check validates the file and exits.
            """
    )

    @Option(name: .goStyle("config"), help: "The configuration file (YAML).")
    var config: String?

    @Flag(name: .goStyle("check"), help: "Validate the configuration and exit.")
    var check = false

    @Option(name: .goStyle("listen"), help: "Without --config: the address to listen on.")
    var listen = Self.defaultListen
    private static let defaultListen = "127.0.0.1:8080"

    @Option(name: .goStyle("backend"), help: "Without --config: a backend's host:port (repeat the flag for each).")
    var backends: [String] = []

    @Option(name: .goStyle("algo"), help: "Without --config: the algorithm, by name or alias (RR, WRR, SRR, LC, PTC, SIH, …).")
    var algo = "round-robin"

    @Option(
        name: .customShort("t", allowingJoined: false),
        help: "Without --config: seconds between TCP health checks of each backend (the seeds' -t); a backend is down at its first failed check and up at its first passed one."
    )
    var healthSeconds: Double?

    @Option(name: .goStyle("admin"), help: "The admin API's address (default 127.0.0.1:9900; overrides the file's admin.listen).")
    var admin: String?

    @Option(name: .goStyle("db"), help: "Record a row per request (proxy_requests) and every health or admin change (events) in this SQLite file.")
    var db: String?

    @Option(name: .goStyle("access-log"), help: "Write a JSON line per request to this file (- for standard output); overrides the file's access-log.")
    var accessLog: String?

    @Option(name: .goStyle("threads"), help: "Event loops (default: one per core; overrides the file's threads).")
    var threads: Int?

    @Option(
        name: .goStyle("yield-interval"),
        help: "How often at most an event loop gives its core to what else waits for it, after writing a tick's requests and responses (default 1ms; 0s: never; overrides the file's yield-interval)."
    )
    var yieldInterval: String?

    @Option(name: .customLong("run-id"), help: .hidden)
    var runID: Int64?

    @Option(name: .customLong("clock-origin"), help: .hidden)
    var clockOrigin: UInt64?

    func validate() throws {
        if self.runID != nil || self.clockOrigin != nil {
            try requireFlag("run-id", self.db != nil, "records into a run of the -db file; give -db")
        }
        if self.config != nil {
            let flags = [("listen", self.listen != Self.defaultListen), ("backend", !self.backends.isEmpty), ("algo", self.algo != "round-robin")]
            for (flag, given) in flags where given {
                throw ValidationError("-\(flag): give it in the configuration file, not beside --config")
            }
        }
        if let seconds = self.healthSeconds {
            try requireFlag("t", self.config == nil, "give health checks in the configuration file, not beside --config")
            try requireFlag("t", seconds >= 0.01 && seconds <= 86_400, "must be between 0.01 and 86400 seconds, got \(seconds)")
        }
        if let threads = self.threads {
            try requireFlag("threads", (1...1024).contains(threads), "must be between 1 and 1024, got \(threads)")
        }
        if let text = self.yieldInterval {
            let interval = try flagValue("yield-interval") { try GoDuration.parse(text) }
            let allowed = ProxyConfiguration.yieldIntervals
            try requireFlag(
                "yield-interval", allowed.contains(interval),
                "must be between \(GoDuration.format(allowed.lowerBound)) and \(GoDuration.format(allowed.upperBound)), got \(text)"
            )
        }
    }

    /// The flag's -yield-interval, validated by ``validate()``.
    private var yieldIntervalFlag: Duration? {
        self.yieldInterval.flatMap { try? GoDuration.parse($0) }
    }

    func run() async throws {
        var configuration: ProxyConfiguration
        do {
            configuration = try self.makeConfiguration()
        } catch let error as ConfigError {
            printError("lbctl proxy: \(error)")
            throw ExitCode.failure
        }
        if let threads = self.threads { configuration.threads = threads }
        if let interval = self.yieldIntervalFlag { configuration.yieldInterval = interval }
        if let admin = self.admin { configuration.admin.address = try flagValue("admin") { try HostPort(parsing: admin) } }
        if let problem = configuration.problems().first {
            printError("lbctl proxy: \(problem)")
            throw ExitCode.failure
        }
        let backendCount = configuration.services.reduce(0) { $0 + $1.backends.count }
        let token = Self.adminToken(configuration.admin)
        if self.check {
            print("\(self.config ?? "flags"): valid: \(configuration.services.count) services, \(backendCount) backends")
            if let warning = configuration.admin.exposureWarning(token: token) { printError(warning) }
            for note in configuration.resourceFigureNotes { printError(note) }
            return
        }
        if let accessLog = self.accessLog { configuration.accessLog = accessLog }
        ParentWatch.startIfAsked()
        let store = try self.db.map { path in try flagValue("db") { try ResultsDatabase.open(path: path) } }
        // Under lbctl run the proxy records into the run the harness began, on its clock and ids.
        let run = try store.map { store in
            try self.runID.map { id in try flagValue("run-id") { try store.attachRun(id: id) } } ?? self.beginRun(store, configuration)
        }
        let backendIDs = try run.map { run in try flagValue("run-id") { try run.database.backendIDs(runID: run.runID) } } ?? [:]
        let recorder: ProxyRecorder?
        do {
            recorder =
                run != nil || configuration.accessLog != nil
                ? try ProxyRecorder(sink: run, accessLogPath: configuration.accessLog, clockOrigin: self.clockOrigin, backendIDs: backendIDs)
                : nil
        } catch {
            printError("lbctl proxy: -access-log: \(error)")
            throw ExitCode.failure
        }
        let startedAt = ContinuousClock.now
        let server = try ProxyServer(configuration: configuration, recorder: recorder) { change in
            printError("health: \(change)")
        }
        let addresses: [String]
        do {
            addresses = try await server.start(adminToken: token).map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" }
        } catch {
            printError("lbctl proxy: cannot listen: \(error)")
            await server.shutdown(grace: .zero)
            _ = try? run?.finish(status: .failed, durationMicros: nil)
            throw ExitCode.failure
        }
        let summary = configuration.services.map { "\($0.name) (\($0.algorithm.name), \($0.backends.count) backends)" }
        printError("proxy listening on \(addresses.joined(separator: ", ")): \(summary.joined(separator: "; "))")
        let admin = server.adminAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let tokenNote = token.map { $0.isEmpty ? "" : ", bearer token required" } ?? ""
        printError("admin API on http://\(admin) (GET /backends, /metrics, /health; POST /register\(tokenNote))")
        if let warning = configuration.admin.exposureWarning(token: token) { printError(warning) }
        for note in configuration.resourceFigureNotes { printError(note) }
        let (signals, continuation) = AsyncStream<Void>.makeStream()
        let forwarder = SignalForwarder { continuation.yield() }
        // Reloads run one at a time, in the order their SIGHUPs came.
        let (hangups, hangupContinuation) = AsyncStream<Void>.makeStream()
        let hangup = HangupListener { hangupContinuation.yield() }
        let reloads = Task { [self] in
            for await _ in hangups { await self.reload(server) }
        }
        for await _ in signals { break }
        // Stopping: a SIGHUP from now on reloads nothing, and neither it nor a second SIGINT or SIGTERM
        // ends the process before the requests in flight have finished and the records are saved.
        defer {
            hangup.cancel()
            forwarder.cancel()
        }
        hangupContinuation.finish()
        await reloads.value
        let left = await server.shutdown(grace: configuration.shutdownGrace)
        if let run {
            let elapsed = ContinuousClock.now - startedAt
            let outcome = try run.finish(status: .completed, durationMicros: elapsed.nanoseconds / 1_000)
            printError("recorded \(outcome.written) records as run \(run.runID) in \(run.database.path)"
                + (outcome.dropped > 0 ? "; \(outcome.dropped) dropped because the store could not keep up" : ""))
        }
        if left > 0 {
            printError("stopped after \(GoDuration.format(configuration.shutdownGrace)) with \(left) requests still in flight")
        } else {
            printError("stopped; every request in flight finished")
        }
    }

    /// SIGHUP: reads the configuration file again; a file with problems changes nothing, and says why.
    private func reload(_ server: ProxyServer) async {
        guard let path = self.config else {
            // Started from flags: the access log is opened again (a rotation), and nothing else changes.
            let outcome = await server.reload(server.runtime.configuration)
            let done = outcome.applied.isEmpty ? "nothing changed" : outcome.applied.joined(separator: "; ")
            printError("reload: no configuration file to read (started from flags); \(done)")
            for failure in outcome.failed { printError("reload: failed: \(failure)") }
            return
        }
        var configuration: ProxyConfiguration
        do {
            configuration = try ProxyConfiguration.load(path: path)
        } catch {
            printError("reload: keeping the running configuration: \(error)")
            return
        }
        if let threads = self.threads { configuration.threads = threads }
        if let interval = self.yieldIntervalFlag { configuration.yieldInterval = interval }
        if let admin = self.admin, let address = try? HostPort(parsing: admin) { configuration.admin.address = address }
        if let accessLog = self.accessLog { configuration.accessLog = accessLog }
        if let problem = configuration.problems().first {
            printError("reload: keeping the running configuration: \(problem)")
            return
        }
        let token = Self.adminToken(configuration.admin)
        let notesBefore = server.runtime.configuration.resourceFigureNotes
        let outcome = await server.reload(configuration, adminToken: token)
        printError("reload: \(path): " + (outcome.applied.isEmpty ? "no changes" : outcome.applied.joined(separator: "; ")))
        if !outcome.needsRestart.isEmpty {
            printError("reload: not applied (they take a restart): \(outcome.needsRestart.joined(separator: "; "))")
        }
        for failure in outcome.failed { printError("reload: failed: \(failure)") }
        if let warning = server.runtime.configuration.admin.exposureWarning(token: token) { printError("reload: \(warning)") }
        for note in server.runtime.configuration.resourceFigureNotes where !notesBefore.contains(note) { printError("reload: \(note)") }
    }

    /// The admin API's token, from the environment variable `admin` names (empty or unset: none).
    private static func adminToken(_ admin: ProxyConfiguration.Admin) -> String? {
        ProcessInfo.processInfo.environment[admin.tokenEnvironmentVariable]
    }

    private func beginRun(_ database: ResultsDatabase, _ configuration: ProxyConfiguration) throws -> RunRecorder {
        var info = RunInfo(kind: .real)
        info.host = ProcessInfo.processInfo.hostName
        info.lblabVersion = LBLabVersion.string
        info.algorithm = configuration.services.map(\.algorithm.name).joined(separator: ",")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let arguments = CommandLine.arguments.dropFirst().joined(separator: " ")
        info.paramsJSON = String(decoding: try encoder.encode(["command": "lbctl " + arguments]), as: UTF8.self)
        return try flagValue("db") { try database.beginRun(info) }
    }

    private func makeConfiguration() throws -> ProxyConfiguration {
        if let path = self.config {
            return try ProxyConfiguration.load(path: path)
        }
        let listen = try flagValue("listen") { try HostPort(parsing: self.listen) }
        let backends = try flagValue("backend") { try self.backends.map { try HostPort(parsing: $0) } }
        guard let algorithm = Algorithm(name: self.algo) else {
            throw ValidationError("-algo: \"\(self.algo)\" is not an algorithm; see lbctl algorithms")
        }
        return ProxyConfiguration(
            listen: listen,
            backends: backends,
            algorithm: algorithm,
            healthInterval: self.healthSeconds.map { .nanoseconds(Int64($0 * 1e9)) }
        )
    }
}
