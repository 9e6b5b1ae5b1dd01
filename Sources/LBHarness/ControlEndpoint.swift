import Foundation
import LBBackend
import LBConfig
import LBCore
import NIOCore

/// A synthetic backend's control endpoint (`/_lblab/state`), whichever way the backend runs: its
/// readiness, and changes of its behaviour.
enum ControlEndpoint {
    /// Posts `change` as JSON; anything but 200 is an error naming the backend.
    static func post(_ address: HostPort, name: String, _ change: [String: any Sendable], group: any EventLoopGroup) async throws(HarnessError) {
        let body = String(decoding: (try? JSONSerialization.data(withJSONObject: change, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
        let answer = try await LoopbackHTTP.call("POST", address, BackendConfiguration.controlPath, body: body, group: group)
        guard answer.status == 200 else {
            throw .control(what: "backend \(name) control", reason: "status \(answer.status): \(answer.body)")
        }
    }

    /// Waits until the backend answers, failing after 10 s, or as soon as `gone` returns its last
    /// output (the backend ended).
    static func waitReady(_ address: HostPort, name: String, group: any EventLoopGroup, gone: () -> String?) async throws(HarnessError) {
        let deadline = ContinuousClock.now + .seconds(10)
        var lastError = "no answer"
        while ContinuousClock.now < deadline {
            if let log = gone() {
                throw .notReady(what: "backend \(name)", reason: "it ended", log: log)
            }
            do {
                let answer = try await LoopbackHTTP.call("GET", address, BackendConfiguration.controlPath, timeout: .milliseconds(500), group: group)
                if answer.status == 200 { return }
                lastError = "status \(answer.status)"
            } catch {
                lastError = "\(error)"
            }
            try? await Task.sleep(for: .milliseconds(25))
        }
        throw .notReady(what: "backend \(name)", reason: lastError, log: gone() ?? "")
    }

    /// The scenario's behaviour of a backend as a control change: what a container started with its own
    /// flags, or a restarted one, is set to.
    static func settings(of spec: ScenarioBackend) -> [String: any Sendable] {
        ["latency": spec.latency.description, "cpu": GoDuration.format(spec.cpuWork), "errors": spec.errors, "healthy": true]
    }
}
