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
        let body = JSONText.encode(change) ?? ""
        let answer = try await LoopbackHTTP.call("POST", address, BackendConfiguration.controlPath, body: body, group: group)
        guard answer.status == 200 else {
            throw .control(what: "backend \(name) control", reason: "status \(answer.status): \(answer.body)")
        }
    }

    /// Waits until the backend answers, failing after 10 s, or as soon as `ended` returns its last
    /// output (the backend's process ended).
    static func waitReady(_ address: HostPort, name: String, group: any EventLoopGroup, ended: () -> String?) async throws(HarnessError) {
        try await Readiness.wait(for: "backend \(name)", ended: ended) { () async throws(HarnessError) -> String? in
            let answer = try await LoopbackHTTP.call("GET", address, BackendConfiguration.controlPath, timeout: .milliseconds(500), group: group)
            return answer.status == 200 ? nil : "status \(answer.status)"
        }
    }

    /// The scenario's behaviour of a backend as a control change: what a container started with its own
    /// flags, or a restarted one, is set to.
    static func settings(of spec: ScenarioBackend) -> [String: any Sendable] {
        ["latency": spec.latency.description, "cpu": GoDuration.format(spec.cpuWork), "errors": spec.errors, "healthy": true]
    }
}
