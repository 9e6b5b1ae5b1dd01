import Foundation
import LBConfig
import LBCore
import LBStats
import NIOCore

/// Backends that are Docker containers (`lbctl run --runtime docker`): the containers `lblab-NAME` of
/// compose.yml, one per backend of the scenario, found through the Engine API on its unix socket.
///
/// Their addresses come from their own command lines (`-listen 127.0.0.1:9001`; loopback only, as
/// everywhere in LBLab). The harness did not start them and does not stop them: it starts or unpauses
/// what it finds stopped, sets each container's CPU and memory limits and each backend's behaviour to
/// the scenario's, applies faults through the engine (kill, pause, unpause, start), samples
/// `/containers/NAME/stats`, and leaves them running at the end.
final class DockerFleet: BackendSet {
    struct Member: Sendable {
        let spec: ScenarioBackend
        let container: String
        let address: HostPort
    }

    let members: [Member]
    private let socket: String
    let group: any EventLoopGroup

    /// Finds each backend's container and its address.
    init(scenario: Scenario, socket: String, group: any EventLoopGroup) async throws(HarnessError) {
        self.socket = socket
        self.group = group
        var members: [Member] = []
        for backend in scenario.backends {
            let container = "lblab-\(backend.name)"
            let inspection = try await Self.inspect(container, socket: socket, group: group)
            guard let address = inspection.address else {
                throw .notReady(what: "container \(container)", reason: "its command has no -listen ADDRESS", log: "")
            }
            guard address.isLoopback else {
                throw .notReady(what: "container \(container)", reason: "it listens on \(address), not on loopback", log: "")
            }
            if let path = scenario.load.webSocketPath, inspection.webSocketPath != path {
                throw .notReady(
                    what: "container \(container)",
                    reason: "the scenario's load is WebSocket messages to \(path), and its command has no -websocket \(path)",
                    log: ""
                )
            }
            members.append(Member(spec: backend, container: container, address: address))
        }
        self.members = members
    }

    subscript(name: String) -> Member? {
        self.members.first { $0.spec.name == name }
    }

    var placements: [(spec: ScenarioBackend, address: HostPort)] {
        self.members.map { ($0.spec, $0.address) }
    }

    var isolation: String { "docker" }

    var runningPIDs: [Int32] { [] }

    func startAll() async throws(HarnessError) {
        for member in self.members {
            try await self.ensureRunning(member)
            var limits: [String: any Sendable] = [:]
            if let cpu = member.spec.cpuLimit { limits["NanoCpus"] = Int64(cpu * 1e9) }
            if let memory = member.spec.memoryLimit {
                limits["Memory"] = memory
                limits["MemorySwap"] = memory
            }
            if !limits.isEmpty { try await self.engine("POST", "/containers/\(member.container)/update", body: limits) }
        }
        for member in self.members {
            try await self.ready(member)
        }
    }

    func fault(_ action: TimelineStep.Action) async throws(HarnessError) {
        guard let member = self[action.backend] else {
            throw .control(what: action.kind, reason: "no backend \(action.backend)")
        }
        switch action {
        case .kill: try await self.engine("POST", "/containers/\(member.container)/kill?signal=SIGKILL")
        case .stop: try await self.engine("POST", "/containers/\(member.container)/pause")
        case .resume: try await self.engine("POST", "/containers/\(member.container)/unpause")
        case .restart:
            try await self.engine("POST", "/containers/\(member.container)/start")
            try await self.ready(member)
        default: throw .control(what: action.kind, reason: "not a fault of a container")
        }
    }

    func sample(_ name: String, tMicros: Int64) async -> ResourceSample? {
        guard let member = self[name],
            let stats = try? await DockerStats.read(container: member.container, socket: self.socket, group: self.group)
        else { return nil }
        return stats.sample(tMicros: tMicros, source: name)
    }

    func stopAll(grace: Duration) async {
        // Not the harness's to stop: left running (a killed one started again), as they were found.
        for member in self.members {
            try? await self.ensureRunning(member)
        }
    }

    /// Waits until the backend answers, then sets its behaviour to the scenario's (a container starts
    /// with compose.yml's flags).
    private func ready(_ member: Member) async throws(HarnessError) {
        try await ControlEndpoint.waitReady(member.address, name: member.spec.name, group: self.group) { nil }
        try await ControlEndpoint.post(member.address, name: member.spec.name, ControlEndpoint.settings(of: member.spec), group: self.group)
    }

    private func ensureRunning(_ member: Member) async throws(HarnessError) {
        let state = try await Self.inspect(member.container, socket: self.socket, group: self.group)
        if state.paused { try await self.engine("POST", "/containers/\(member.container)/unpause") }
        if !state.running { try await self.engine("POST", "/containers/\(member.container)/start") }
    }

    /// Calls the engine; any answer but 2xx or 304 (nothing to do) is an error naming the call.
    @discardableResult
    private func engine(_ method: String, _ path: String, body: [String: any Sendable]? = nil) async throws(HarnessError) -> SocketHTTP.Response {
        try await Self.engine(method, path, body: body, socket: self.socket, group: self.group)
    }

    private static func engine(
        _ method: String,
        _ path: String,
        body: [String: any Sendable]? = nil,
        socket: String,
        group: any EventLoopGroup
    ) async throws(HarnessError) -> SocketHTTP.Response {
        let text = body.map { JSONText.encode($0) ?? "" }
        let answer: SocketHTTP.Response
        do {
            answer = try await SocketHTTP.call(method, .unix(socket), path, body: text, timeout: .seconds(10), group: group)
        } catch {
            throw .control(what: "Docker Engine API \(method) \(path)", reason: "\(error.reason) (is the engine running, and \(socket) its socket?)")
        }
        guard (200..<300).contains(answer.status) || answer.status == 304 else {
            throw .control(what: "Docker Engine API \(method) \(path)", reason: "status \(answer.status): \(answer.body.prefix(200))")
        }
        return answer
    }

    /// What `GET /containers/NAME/json` says: running, paused, and the `-listen` address and `-websocket`
    /// path of its command.
    private static func inspect(_ container: String, socket: String, group: any EventLoopGroup) async throws(HarnessError)
        -> (running: Bool, paused: Bool, address: HostPort?, webSocketPath: String?)
    {
        let answer = try await Self.engine("GET", "/containers/\(container)/json", socket: socket, group: group)
        guard let object = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any] else {
            throw .control(what: "Docker Engine API GET /containers/\(container)/json", reason: "not a container description")
        }
        let state = object["State"] as? [String: Any]
        let command = ((object["Config"] as? [String: Any])?["Cmd"] as? [String]) ?? (object["Args"] as? [String]) ?? []
        func value(of flag: String) -> String? {
            command.firstIndex { $0 == "-" + flag || $0 == "--" + flag }.flatMap { command.indices.contains($0 + 1) ? command[$0 + 1] : nil }
        }
        return (
            (state?["Running"] as? Bool) ?? false, (state?["Paused"] as? Bool) ?? false,
            value(of: "listen").flatMap { try? HostPort(parsing: $0) }, value(of: "websocket")
        )
    }
}
