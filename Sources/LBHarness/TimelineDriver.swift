import Foundation
import LBConfig
import LBCore
import NIOCore


/// Applies a scenario's fault timeline at its times (from the start of the load) and records each step
/// in `events`, at the time it was applied, with what it did; a step that fails is recorded as
/// `timeline_error` with the reason, and the run goes on.
struct TimelineDriver: Sendable {
    let steps: [TimelineStep]
    let fleet: any BackendSet
    let proxy: ProxyProcess
    let sink: any RecordSink
    let clockOrigin: UInt64
    /// Called with a line for the terminal when a step is applied or fails.
    let report: @Sendable (String) -> Void

    /// Runs the timeline; `loadStart` is the load's t0 (uptime nanoseconds). Returns when every step is
    /// done or the task is cancelled.
    func run(loadStart: UInt64) async {
        for step in self.steps {
            let due = loadStart + UInt64(step.at.nanoseconds)
            let now = NIODeadline.now().uptimeNanoseconds
            if due > now { try? await Task.sleep(for: .nanoseconds(Int64(due - now))) }
            if Task.isCancelled { return }
            let tMicros = ScenarioRun.micros(since: self.clockOrigin)
            do {
                try await self.apply(step.action)
                self.sink.record(RunEvent(tMicros: tMicros, kind: step.action.kind, subject: step.action.backend, detailJSON: Self.json(step.action.detail.merging(["at": GoDuration.format(step.at)]) { a, _ in a })))
                self.report("\(GoDuration.format(step.at)): \(step.action.kind) \(step.action.backend)")
            } catch {
                self.sink.record(RunEvent(tMicros: tMicros, kind: "timeline_error", subject: step.action.backend, detailJSON: Self.json(["step": step.action.kind, "error": "\(error)"])))
                self.report("\(GoDuration.format(step.at)): \(step.action.kind) \(step.action.backend) failed: \(error)")
            }
        }
    }

    private func apply(_ action: TimelineStep.Action) async throws(HarnessError) {
        let name = action.backend
        guard let address = self.fleet.address(of: name) else {
            throw .control(what: action.kind, reason: "no backend \(name)")
        }
        switch action {
        case .kill, .stop, .resume, .restart:
            try await self.fleet.fault(action)
        case .slow(_, let latency):
            try await self.fleet.control(name, ["latency": latency.description])
        case .errors(_, let rate):
            try await self.fleet.control(name, ["errors": rate])
        case .health(_, let healthy):
            try await self.fleet.control(name, ["healthy": healthy])
        case .weight(_, let weight):
            try await self.proxy.adminCall("PUT", "/backends/\(name)/weight", body: ["weight": weight])
        case .add:
            let weight = self.fleet.placements.first { $0.spec.name == name }?.spec.weight ?? 1
            try await self.proxy.adminCall("POST", "/backends", body: ["name": name, "address": address.description, "weight": weight])
        case .remove:
            try await self.proxy.adminCall("DELETE", "/backends/\(name)")
        case .drain:
            try await self.proxy.adminCall("POST", "/backends/\(name)/drain")
        }
    }

    static func json(_ object: [String: String]) -> String? {
        object.isEmpty ? nil : JSONText.encode(object)
    }
}
