import Foundation
import LBConfig
import LBCore
import LBStats
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The synthetic backends of one run: each an `lbctl backend` process on its own loopback port, in its
/// own container when cgroups can be made, started, killed, stopped, resumed and restarted as the
/// timeline says.
final class BackendFleet: BackendSet {
    /// One backend: its scenario entry, address, container, and current process.
    final class Member: Sendable {
        let spec: ScenarioBackend
        let address: HostPort
        let container: CgroupContainer?
        let process = Mutex<ChildProcess?>(nil)

        init(spec: ScenarioBackend, address: HostPort, container: CgroupContainer?) {
            self.spec = spec
            self.address = address
            self.container = container
        }
    }

    let members: [Member]
    private let executable: String
    private let logDirectory: String
    private let seed: UInt64
    /// The path every backend answers as a WebSocket, when the load is WebSocket messages.
    private let webSocketPath: String?
    let group: any EventLoopGroup

    /// Places every backend of `scenario`: a free port each and, with `cgroups`, a container each with the
    /// scenario's limits. Nothing is started yet.
    init(
        scenario: Scenario,
        seed: UInt64,
        executable: String,
        logDirectory: String,
        cgroups: CgroupGroup?,
        group: any EventLoopGroup
    ) throws(HarnessError) {
        var members: [Member] = []
        for backend in scenario.backends {
            let port = try FreePort.next()
            var container: CgroupContainer?
            if let cgroups {
                do {
                    container = try cgroups.makeContainer(name: backend.name, cpuLimit: backend.cpuLimit, memoryLimit: backend.memoryLimit)
                } catch {
                    throw .spawn(command: "the container of \(backend.name)", reason: "\(error)")
                }
            }
            members.append(Member(spec: backend, address: HostPort(host: "127.0.0.1", port: port), container: container))
        }
        self.members = members
        self.webSocketPath = scenario.load.webSocketPath
        self.executable = executable
        self.logDirectory = logDirectory
        self.seed = seed
        self.group = group
    }

    subscript(name: String) -> Member? {
        self.members.first { $0.spec.name == name }
    }

    var placements: [(spec: ScenarioBackend, address: HostPort)] {
        self.members.map { ($0.spec, $0.address) }
    }

    var isolation: String {
        self.members.first?.container.map { "cgroup \($0.version.rawValue)" } ?? "none"
    }

    func fault(_ action: TimelineStep.Action) async throws(HarnessError) {
        guard let member = self[action.backend] else { throw .control(what: action.kind, reason: "no backend \(action.backend)") }
        switch action {
        case .kill: self.signal(member, SIGKILL)
        case .stop: self.signal(member, SIGSTOP)
        case .resume: self.signal(member, SIGCONT)
        case .restart:
            if let old = member.process.withLock({ $0 }) { _ = await old.wait(timeout: .seconds(2)) }
            try self.start(member)
            try await self.waitReady(member)
        default: throw .control(what: action.kind, reason: "not a fault of the backend's process")
        }
    }

    func sample(_ name: String, tMicros: Int64) async -> ResourceSample? {
        guard let member = self[name], let process = member.process.withLock({ $0 }), process.isRunning else { return nil }
        var sample = RunSampler.processSample(pid: process.pid, tMicros: tMicros, source: name)
        if let stats = member.container?.stats() {
            sample.cpuUsageMicros = stats.cpuUsageMicros ?? sample.cpuUsageMicros
            sample.cpuThrottledMicros = stats.cpuThrottledMicros
        }
        return sample
    }

    /// Starts every backend and waits until each answers on its control endpoint.
    func startAll() async throws(HarnessError) {
        for member in self.members {
            try self.start(member)
        }
        for member in self.members {
            try await self.waitReady(member)
        }
    }

    /// Starts (or restarts) `member`'s process.
    func start(_ member: Member) throws(HarnessError) {
        let spec = member.spec
        var arguments = [
            "backend", "-listen", member.address.description, "-name", spec.name,
            "-latency", spec.latency.description, "-cpu", GoDuration.format(spec.cpuWork), "-errors", "\(spec.errors)",
            "-threads", "\(spec.threads)", "-seed", "\(self.seed &+ UInt64(self.members.firstIndex { $0 === member } ?? 0))",
        ]
        if let capacity = spec.capacity { arguments += ["-capacity", "\(capacity)"] }
        if let queue = spec.queue { arguments += ["-queue", "\(queue)"] }
        if let path = self.webSocketPath { arguments += ["-websocket", path] }
        let process = try ChildProcess(
            executable: self.executable,
            arguments: arguments,
            logPath: "\(self.logDirectory)/backend-\(spec.name).log",
            environment: [ParentWatchVariable.name: "\(getpid())"],
            joining: member.container?.procsFiles ?? []
        )
        member.process.withLock { $0 = process }
    }

    /// Waits until `member` answers, failing after 10 s or as soon as its process ends.
    func waitReady(_ member: Member) async throws(HarnessError) {
        try await ControlEndpoint.waitReady(member.address, name: member.spec.name, group: self.group) {
            let process = member.process.withLock { $0 }
            return process?.isRunning == true ? nil : process?.logTail() ?? ""
        }
    }

    /// Sends `signal` to `member`'s process.
    func signal(_ member: Member, _ signal: Int32) {
        member.process.withLock { $0 }?.signal(signal)
    }

    /// Stops every backend (SIGCONT, SIGTERM, then SIGKILL after `grace`).
    func stopAll(grace: Duration) async {
        await withTaskGroup(of: Void.self) { tasks in
            for member in self.members {
                if let process = member.process.withLock({ $0 }) {
                    tasks.addTask { await process.stop(grace: grace) }
                }
            }
        }
    }

    /// PIDs of processes started and still running (for the end-of-run check).
    var runningPIDs: [Int32] {
        self.members.compactMap { $0.process.withLock { $0 } }.filter(\.isRunning).map(\.pid)
    }
}

/// The variable a child of `lbctl run` watches its parent by (LBCLI's `ParentWatch`).
enum ParentWatchVariable {
    static let name = "LBLAB_PARENT_PID"
}

/// A loopback port free right now, for a child to listen on: tried by binding it, then released.
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`), never from it: the
/// source port of every outgoing connection (the proxy's to its backends, the load's, the health
/// checks') is drawn from that range, and with dozens of backends starting, a port the kernel handed
/// out as free could be the source of a new connection before the child bound it (a 64-backend run
/// failed so). Another process could still take a port between the check and the child's bind; the
/// child then fails to listen and says so. Ports handed out by this process are not handed out again
/// until the range has gone round.
enum FreePort {
    /// The next port to try, in `[low, high)` below the ephemeral range.
    private static let cursor = Mutex<Int?>(nil)

    static func next() throws(HarnessError) -> Int {
        let (low, high) = Self.range()
        for _ in low..<high {
            let port = Self.cursor.withLock { cursor -> Int in
                // Start where another process of the same kind is unlikely to be: by this one's PID.
                let current = cursor ?? low + Int(getpid()) % (high - low)
                cursor = current + 1 < high ? current + 1 : low
                return current
            }
            if Self.isFree(port) { return port }
        }
        throw .spawn(command: "a free port", reason: "no port between \(low) and \(high) is free on 127.0.0.1")
    }

    /// Ports outside the ephemeral range: from 10,000 up to its start, or above its end when that
    /// leaves more room, or any unprivileged port when neither leaves a thousand.
    static func range() -> (Int, Int) {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        let (first, last) = bounds.count == 2 ? (bounds[0], bounds[1]) : (32_768, 60_999)
        if first - 10_000 >= 1_000 { return (10_000, first) }
        if 65_535 - last >= 1_000 { return (last + 1, 65_536) }
        return (1_024, 65_536)
    }

    /// Whether 127.0.0.1:`port` can be bound now.
    private static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        address.sin_port = UInt16(port).bigEndian
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 }
        }
    }
}
