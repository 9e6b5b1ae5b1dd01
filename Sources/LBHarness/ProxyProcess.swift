import Foundation
import LBConfig
import LBCore
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The proxy of one run: `lbctl proxy` with the scenario's configuration for one algorithm, recording
/// into the run's database row (`--run-id`, on the run's clock), driven through its admin API.
final class ProxyProcess: Sendable {
    let process: ChildProcess
    /// Where clients connect.
    let listen: HostPort
    /// The admin API.
    let admin: HostPort
    private let group: any EventLoopGroup

    /// Writes the configuration (its pickers seeded from the run's `seed`) next to the logs and starts the
    /// proxy.
    init(
        scenario: Scenario,
        entry: Scenario.AlgorithmUnderTest,
        seed: UInt64,
        backends: any BackendSet,
        database: String,
        runID: Int64,
        clockOrigin: UInt64,
        executable: String,
        logDirectory: String,
        group: any EventLoopGroup
    ) throws(HarnessError) {
        self.listen = HostPort(host: "127.0.0.1", port: try FreePort.next())
        self.admin = HostPort(host: "127.0.0.1", port: try FreePort.next())
        self.group = group
        let addresses = Dictionary(uniqueKeysWithValues: backends.placements.map { ($0.spec.name, $0.address) })
        let text = scenario.proxyConfigurationYAML(for: entry, runSeed: seed, listen: self.listen, admin: self.admin, backendAddresses: addresses)
        let configPath = "\(logDirectory)/proxy.yml"
        do {
            try text.write(toFile: configPath, atomically: true, encoding: .utf8)
        } catch {
            throw .spawn(command: "lbctl proxy", reason: "cannot write \(configPath): \(error)")
        }
        self.process = try ChildProcess(
            executable: executable,
            arguments: [
                "proxy", "--config", configPath, "-db", database, "--run-id", "\(runID)", "--clock-origin", "\(clockOrigin)",
            ],
            logPath: "\(logDirectory)/proxy.log",
            environment: [ParentWatchVariable.name: "\(getpid())", "LBLAB_ADMIN_TOKEN": ""]
        )
    }

    /// Waits until the admin API answers and the listener accepts, failing after 10 s or when the
    /// process ends.
    func waitReady() async throws(HarnessError) {
        try await Readiness.wait(for: "the proxy", ended: { self.process.isRunning ? nil : self.process.logTail() }) { () async throws(HarnessError) -> String? in
            let health = try await LoopbackHTTP.call("GET", self.admin, "/health", timeout: .milliseconds(500), group: self.group)
            guard health.status == 200 else { return "admin /health answered \(health.status)" }
            // The listener opens with the admin API; a request through it proves both.
            _ = try await LoopbackHTTP.call("GET", self.listen, "/", timeout: .seconds(2), group: self.group)
            return nil
        }
    }

    /// Calls the admin API and returns the body; a status other than 2xx is an error.
    @discardableResult
    func adminCall(_ method: String, _ path: String, body: [String: Any]? = nil, timeout: Duration = .seconds(2)) async throws(HarnessError) -> String {
        let text = body.map { JSONText.encode($0) ?? "" }
        let answer = try await LoopbackHTTP.call(method, self.admin, path, body: text, timeout: timeout, group: self.group)
        guard (200..<300).contains(answer.status) else {
            throw .control(what: "proxy admin \(method) \(path)", reason: "status \(answer.status): \(answer.body.prefix(200))")
        }
        return answer.body
    }

    /// Requests in flight to each backend, as the proxy counts them (`GET /backends`); empty when the
    /// admin API does not answer within `timeout`.
    func inFlight(timeout: Duration) async -> [String: Int] {
        guard let answer = try? await LoopbackHTTP.call("GET", self.admin, "/backends", timeout: timeout, group: self.group),
            answer.status == 200,
            let object = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
        else { return [:] }
        var counts: [String: Int] = [:]
        for service in (object["services"] as? [[String: Any]]) ?? [] {
            for backend in (service["backends"] as? [[String: Any]]) ?? [] {
                if let name = backend["name"] as? String, let inFlight = backend["inFlight"] as? Int {
                    counts[name, default: 0] += inFlight
                }
            }
        }
        return counts
    }

    /// SIGTERM: the proxy stops accepting, lets what is in flight finish, writes its records and exits;
    /// SIGKILL after `grace`.
    func stop(grace: Duration) async -> Int32? {
        await self.process.stop(grace: grace)
    }
}
