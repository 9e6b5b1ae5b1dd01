import ArgumentParser
import LBBackend
import LBCLI
import LBCore
import Logging
import ServiceLifecycle

/// `lbctl backend`: one synthetic HTTP/1.1 backend, until SIGINT or SIGTERM.
struct BackendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backend",
        abstract: "Serve HTTP/1.1 as a synthetic backend with configurable latency, errors and capacity.",
        discussion: """
            Every response carries X-LBLab-Backend: NAME. GET/POST \(BackendConfiguration.controlPath) \
            (loopback clients only) reads or changes latency, cpu, errors and healthy while it runs, e.g. \
            curl -d '{"latency":"50ms","errors":0.1}' http://127.0.0.1:9001\(BackendConfiguration.controlPath)
            """
    )

    @Option(name: .goStyle("listen"), help: "Address to listen on (host:port; loopback by default).")
    var listen = "127.0.0.1:9001"

    @Option(name: .goStyle("name"), help: "Name sent in X-LBLab-Backend (default: backend-PORT).")
    var name: String?

    @Option(
        name: .goStyle("latency"),
        help: "Latency per request: 5ms, uniform(1ms,10ms), exponential(5ms) or lognormal(median,p99)."
    )
    var latency = "0s"

    @Option(name: .goStyle("cpu"), help: "CPU time burnt per request (Go duration), so that CPU limits matter.")
    var cpu = "0s"

    @Option(name: .goStyle("errors"), help: "Share of requests answered 500, from 0 to 1.")
    var errors = 0.0

    @Option(name: .goStyle("capacity"), help: "Requests served at once; more wait in a FIFO queue. 0: no limit.")
    var capacity = 0

    @Option(name: .goStyle("queue"), help: "Requests that may wait when at capacity; beyond it 503. -1: no limit.")
    var queue = -1

    @Option(name: .goStyle("health-path"), help: "Path answering 200 while healthy, 503 when not.")
    var healthPath = "/health"

    @Option(name: .goStyle("response-size"), help: "Bytes in each successful response body.")
    var responseSize = 2

    @Option(name: .goStyle("threads"), help: "Event loop threads (and CPU-work threads).")
    var threads = 1

    @Option(name: .goStyle("seed"), help: "Seed of the latency and error draws.")
    var seed: UInt64 = 0

    @Flag(name: .goStyle("echo"), help: "Answer each request with its own body (chunked when it came chunked).")
    var echo = false

    @Option(name: .goStyle("websocket"), help: "A path answered as a WebSocket that echoes every message (e.g. /ws).")
    var webSocketPath: String?

    func validate() throws {
        _ = try self.makeConfiguration()
    }

    func run() async throws {
        let configuration = try self.makeConfiguration()
        ParentWatch.startIfAsked()
        let backend = try SyntheticBackend(configuration: configuration)
        let logger = Logger(label: "lbctl.backend")
        let group = ServiceGroup(
            configuration: .init(
                services: [backend],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        let settings = configuration.settings
        printError(
            "backend \(configuration.name) listening on \(configuration.listen) (latency \(settings.latency), "
                + "cpu \(GoDuration.format(settings.cpuWork)), errors \(settings.errorRate), "
                + "capacity \(configuration.capacity.map(String.init) ?? "unlimited"))"
        )
        try await group.run()
    }

    func makeConfiguration() throws -> BackendConfiguration {
        let address = try flagValue("listen") { try HostPort(parsing: self.listen) }
        try requireFlag(
            "listen",
            address.isLoopback,
            "\(address) is not a loopback address; LBLab backends listen on 127.0.0.0/8 or [::1]"
        )
        let settings = BackendSettings(
            latency: try flagValue("latency") { try LatencyModel(parsing: self.latency) },
            cpuWork: try flagValue("cpu") { try GoDuration.parse(self.cpu) },
            errorRate: self.errors
        )
        try requireFlag("errors", (0...1).contains(self.errors), "must be between 0 and 1, got \(self.errors)")
        try requireFlag("cpu", settings.cpuWork >= .zero, "must not be negative")
        try requireFlag("capacity", self.capacity >= 0, "must be 0 (no limit) or more, got \(self.capacity)")
        try requireFlag("queue", self.queue >= -1, "must be -1 (no limit) or more, got \(self.queue)")
        try requireFlag("queue", self.queue == -1 || self.capacity > 0, "is the queue beyond -capacity; give -capacity N too")
        try requireFlag("threads", (1...256).contains(self.threads), "must be between 1 and 256")
        try requireFlag("response-size", self.responseSize >= 0, "must not be negative")
        try requireFlag("health-path", self.healthPath.hasPrefix("/"), "must start with /")
        if let path = self.webSocketPath {
            try requireFlag("websocket", path.hasPrefix("/") && !path.contains("?"), "is a path, starting with / and without a query")
            try requireFlag("websocket", path != self.healthPath && !path.hasPrefix(BackendConfiguration.controlPath), "is already the health path or the control endpoint's")
        }
        var configuration = BackendConfiguration(
            name: self.name ?? "backend-\(address.port)",
            listen: address,
            settings: settings,
            capacity: self.capacity == 0 ? nil : self.capacity,
            queueLimit: self.queue < 0 ? nil : self.queue,
            healthPath: self.healthPath,
            responseBytes: self.responseSize,
            threads: self.threads,
            seed: self.seed
        )
        configuration.echo = self.echo
        configuration.webSocketPath = self.webSocketPath
        return configuration
    }
}
