import ArgumentParser
import Dispatch
import Foundation
import LBCLI
import LBCore
import LBLoad
import LBStore

/// `loadgen`: open-loop HTTP load with many simulated clients, corrected for coordinated omission.
@main
struct LoadgenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Send open-loop HTTP/1.1 (or WebSocket) load from many simulated clients and report corrected latency.",
        discussion: """
            Open loop by default: every request has a due time fixed in advance, and latency counts from it, \
            so a slow target shows in the figures instead of slowing the load. Each client sends from its own \
            synthetic address in X-Forwarded-For (TEST-NET-3, -2, -1, then 198.18.0.0/15). With a ws:// URL each request is a WebSocket message, done \
            when its echo is back, and each client keeps one WebSocket for the run. Flags take one dash or two \
            (-clients 50, --clients 50); durations are Go's (30s, 1m30s).
            """,
        version: LBLabVersion.full
    )

    @Option(name: .goStyle("url"), help: "Target URL: http://host:port/path, or ws://host:port/path to send each request as a WebSocket message and wait for its echo.")
    var url = "http://127.0.0.1:8080/"

    @Option(name: .goStyle("clients"), help: "Simulated clients, each with its own address: TEST-NET-3, -2, -1, then 198.18.0.0/15 (at most 131,832).")
    var clients = 10

    @Option(name: .goStyle("rate"), help: "Requests per second per client (default 10 unless -total-rate).")
    var rate: Double?

    @Option(name: .goStyle("total-rate"), help: "Requests per second over all clients, instead of -rate.")
    var totalRate: Double?

    @Option(name: .goStyle("arrival"), help: "constant or poisson gaps between a client's requests (default constant).")
    var arrival: String?

    @Option(name: .goStyle("duration"), help: "How long to send (Go duration).")
    var duration = "10s"

    @Option(name: .goStyle("requests"), help: "Stop after this many requests (with -duration: whichever comes first).")
    var requests: Int?

    @Option(name: .goStyle("warmup"), help: "Leave requests due in this first stretch out of the summary.")
    var warmup = "0s"

    @Flag(name: .goStyle("closed"), help: "Closed loop (wrk's model) with -connections, for comparison with wrk.")
    var closed = false

    @Option(name: .goStyle("connections"), help: "Closed loop: connections, each sending its next request on the last response (default 50).")
    var connections: Int?

    @Option(name: .goStyle("max-connections"), help: "Open loop: most connections at once (default: enough for 1 s of requests).")
    var maxConnections: Int?

    @Option(name: .goStyle("method"), help: "HTTP method.")
    var method = "GET"

    @Option(name: .goStyle("header"), help: "A request header 'Name: value' (repeatable); Host replaces the default.")
    var header: [String] = []

    @Option(name: .goStyle("body"), help: "Request body (ws://: every message; by default a message is the request's id).")
    var body: String?

    @Option(name: .goStyle("body-file"), help: "Request body from a file.")
    var bodyFile: String?

    @Option(name: .goStyle("timeout"), help: "A request not complete after this counts as timed out (Go duration).")
    var timeout = "10s"

    @Option(name: .goStyle("keys"), help: "Send a key 0..N-1 per request in X-LBLab-Key, for hash algorithms.")
    var keys: Int?

    @Option(name: .goStyle("zipf"), help: "Zipf exponent of the keys (0: uniform).")
    var zipf = 0.0

    @Option(name: .goStyle("seed"), help: "Seed of the schedule and the keys.")
    var seed: UInt64 = 1

    @Option(name: .goStyle("threads"), help: "Event loop threads.")
    var threads = 1

    @Flag(name: .goStyle("json"), help: "Print the summary as JSON on standard output.")
    var json = false

    @Option(name: .goStyle("db"), help: "Record every request in this SQLite results file.")
    var db: String?

    func validate() throws {
        _ = try self.makeConfiguration()
    }

    func run() async throws {
        let configuration = try self.makeConfiguration()
        let database = try self.db.map { path in try flagValue("db") { try ResultsDatabase.open(path: path) } }
        let recorder = try database.map { database in try self.beginRun(database, configuration) }
        let run = LoadRun(configuration: configuration, sink: recorder)
        let signals = SignalForwarder(hangup: true) { run.interrupt() }
        defer { signals.cancel() }

        let progress = ProgressLine()
        let report: LoadReport
        do {
            report = try await run.run { progress.show($0.line) }
        } catch {
            progress.end()
            _ = try? recorder?.finish(status: .failed, durationMicros: nil)
            printError("loadgen: -url: \(error)")
            throw ExitCode.failure
        }
        progress.end()
        let status: RunStatus = report.interrupted ? .interrupted : .completed
        if let recorder {
            recorder.record(RunEvent(tMicros: report.elapsed.nanoseconds / 1_000, kind: "phase", subject: "loadgen", detailJSON: #"{"phase":"end"}"#))
            let outcome = try recorder.finish(status: status, durationMicros: report.elapsed.nanoseconds / 1_000)
            printError("recorded \(outcome.written) records as run \(recorder.runID) (\(status.rawValue)) in \(recorder.database.path)"
                + (outcome.dropped > 0 ? "; \(outcome.dropped) dropped because the store could not keep up" : ""))
        }
        if self.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report.json), as: UTF8.self))
        } else {
            print(report.text)
        }
        if report.interrupted {
            throw ExitCode(130)
        }
    }

    private func beginRun(_ database: ResultsDatabase, _ configuration: LoadConfiguration) throws -> RunRecorder {
        var info = RunInfo(kind: .loadgen)
        info.seed = configuration.seed
        info.host = ProcessInfo.processInfo.hostName
        info.lblabVersion = LBLabVersion.string
        let arguments = CommandLine.arguments.dropFirst().joined(separator: " ")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        info.paramsJSON = String(decoding: try encoder.encode(["command": "loadgen " + arguments]), as: UTF8.self)
        let recorder = try flagValue("db") { try database.beginRun(info) }
        recorder.record(RunEvent(tMicros: 0, kind: "phase", subject: "loadgen", detailJSON: #"{"phase":"start"}"#))
        return recorder
    }

    func makeConfiguration() throws -> LoadConfiguration {
        let (target, webSocket) = try flagValue("url") { try Self.parseURL(self.url) }
        if webSocket {
            // One WebSocket per client, opened with GET; its messages carry no headers.
            let methodProblem = WebSocketLoad.methodProblem(self.method)
            try requireFlag("method", methodProblem == nil, "\(methodProblem ?? ""); -method applies to http:// targets")
            try requireFlag("keys", self.keys == nil, WebSocketLoad.keysProblem)
            try requireFlag("max-connections", self.maxConnections == nil, "applies to http:// targets; over ws:// each client keeps one connection")
        }
        try requireFlag("clients", (1...ClientAddresses.capacity).contains(self.clients),
            "must be between 1 and \(ClientAddresses.capacity) (one synthetic address each), got \(self.clients)")
        try requireFlag("rate", self.rate == nil || self.totalRate == nil, "give -rate (per client) or -total-rate, not both")
        // A flag of the other loop would be ignored: refused instead, so that a run is what its flags say.
        if self.closed {
            try requireFlag("rate", self.rate == nil, "the closed loop sends each request when the last is answered; give -rate or -closed")
            try requireFlag("total-rate", self.totalRate == nil, "the closed loop sends each request when the last is answered; give -total-rate or -closed")
            try requireFlag("arrival", self.arrival == nil, "applies to the open loop, not to -closed")
            try requireFlag("max-connections", self.maxConnections == nil, "applies to the open loop; -closed keeps -connections open")
        } else {
            try requireFlag("connections", self.connections == nil, "applies to -closed; the open loop opens connections as it needs them, up to -max-connections")
        }
        try requireFlag("zipf", self.zipf == 0 || self.keys != nil, "draws among the keys of -keys N; give -keys too")
        let ratePerClient = self.totalRate.map { $0 / Double(self.clients) } ?? self.rate ?? 10
        if let totalRate {
            try requireFlag("total-rate", totalRate > 0 && totalRate.isFinite, "must be above 0, got \(totalRate)")
        }
        try requireFlag("rate", ratePerClient > 0 && ratePerClient.isFinite, "must be above 0, got \(ratePerClient)")
        let arrival = try flagValue("arrival") {
            let name = self.arrival ?? "constant"
            guard let arrival = ArrivalProcess(rawValue: name.lowercased()) else {
                throw MalformedValue(text: name, problem: "is not an arrival process; use constant or poisson")
            }
            return arrival
        }
        let connections = self.connections ?? 50
        let pacing: LoadConfiguration.Pacing =
            self.closed ? .closedLoop(connections: connections) : .openLoop(ratePerClient: ratePerClient, arrival: arrival)
        if self.closed {
            try requireFlag("connections", (1...10_000).contains(connections), "must be between 1 and 10000")
        }
        var configuration = LoadConfiguration(target: target, clients: self.clients, pacing: pacing)
        configuration.webSocket = webSocket
        configuration.duration = try flagValue("duration") { try GoDuration.parse(self.duration) }
        try requireFlag("duration", configuration.duration! > .zero, "must be above 0")
        if let requests {
            try requireFlag("requests", requests > 0, "must be above 0, got \(requests)")
            configuration.requests = requests
        }
        configuration.warmup = try flagValue("warmup") { try GoDuration.parse(self.warmup) }
        try requireFlag("warmup", configuration.warmup >= .zero && configuration.warmup < configuration.duration!,
            "must be at least 0 and shorter than -duration")
        configuration.timeout = try flagValue("timeout") { try GoDuration.parse(self.timeout) }
        try requireFlag("timeout", configuration.timeout > .zero, "must be above 0")
        try requireFlag("method", !self.method.isEmpty && self.method.allSatisfy { $0.isLetter }, "must be an HTTP method such as GET")
        configuration.method = self.method.uppercased()
        configuration.headers = try self.header.map { header in
            try flagValue("header") {
                guard let colon = header.firstIndex(of: ":"), header[..<colon].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }),
                    colon != header.startIndex, !header.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" })
                else {
                    throw MalformedValue(text: header, problem: "is not a header; write 'Name: value'")
                }
                let name = String(header[..<colon])
                if let reason = LoadConfiguration.headerLoadgenWrites(name.lowercased(), keys: self.keys != nil) {
                    throw MalformedValue(text: header, problem: "names a header loadgen writes itself: \(reason)")
                }
                return (name, header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
        }
        try requireFlag("body", self.body == nil || self.bodyFile == nil, "give -body or -body-file, not both")
        if let body {
            configuration.body = Array(body.utf8)
        } else if let bodyFile {
            configuration.body = try flagValue("body-file") {
                guard let data = FileManager.default.contents(atPath: bodyFile) else {
                    throw MalformedValue(text: bodyFile, problem: "cannot be read")
                }
                return Array(data)
            }
        }
        if let keys {
            try requireFlag("keys", (1...10_000_000).contains(keys), "must be between 1 and 10000000")
            try requireFlag("zipf", self.zipf >= 0 && self.zipf.isFinite, "must be 0 or more")
            configuration.keys = ZipfKeys(count: keys, exponent: self.zipf)
        }
        configuration.seed = self.seed
        try requireFlag("threads", (1...64).contains(self.threads), "must be between 1 and 64")
        configuration.threads = self.threads
        if let maxConnections, !self.closed {
            try requireFlag("max-connections", (1...100_000).contains(maxConnections), "must be between 1 and 100000")
            configuration.maxConnections = maxConnections
        }
        return configuration
    }

    /// Splits an `http://host:port/path` or `ws://host:port/path` URL; `webSocket` for the second.
    static func parseURL(_ text: String) throws -> (target: LoadConfiguration.Target, webSocket: Bool) {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw MalformedValue(text: text, problem: "is not a URL; write e.g. http://127.0.0.1:8080/")
        }
        guard scheme == "http" || scheme == "ws" else {
            throw MalformedValue(text: text, problem: "uses \(scheme); loadgen speaks plain http and ws")
        }
        guard let host = components.host, !host.isEmpty else {
            throw MalformedValue(text: text, problem: "has no host")
        }
        let port = components.port ?? 80
        guard (1...65_535).contains(port) else {
            throw MalformedValue(text: text, problem: "has a bad port")
        }
        var path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        if let query = components.percentEncodedQuery {
            path += "?" + query
        }
        return (LoadConfiguration.Target(host: host, port: port, path: path), scheme == "ws")
    }
}
