import Foundation
public import LBStore

extension RunReport {
    /// Steal above this share of the CPU time makes a run's latency figures suspect. On this project's
    /// 2-core machine a run with 4.7% steal had its median 15% above its repeats' and the load
    /// generator's hop p99 four times theirs, while runs at up to 1.3% matched (bench/RESULTS.md,
    /// "Simulator against real runs").
    public static let stealWarning = 0.02

    /// The report as `lbctl report` prints it.
    public var text: String {
        let run = self.run
        var lines = [
            "run \(run.id) \(run.kind)" + (run.scenario.map { " scenario \($0)" } ?? "") + (run.algorithm.map { " algorithm \($0)" } ?? "")
                + (run.repeat > 0 ? " repeat \(run.repeat + 1)" : "") + ": \(run.status.rawValue), started \(run.startedAt)",
            String(
                format: "  window %.1f s after warm-up: %d requests, %d responses, %.1f req/s, %d errors (%.3f%%)",
                Double(self.window.upperBound - self.window.lowerBound) / 1e6, self.requests, self.responses, self.throughput, self.errors,
                self.requests > 0 ? Double(self.errors) * 100 / Double(self.requests) : 0
            ),
        ]
        func ms(_ micros: Int64?) -> String { micros.map { String(format: "%.2f", Double($0) / 1_000) } ?? "-" }
        var table = [["latency (ms)", "p50", "p90", "p99", "p99.9", "max", "mean"]]
        for (name, summary) in [("corrected (from intended)", self.corrected), ("service (from sent)", self.service)] {
            table.append([name, ms(summary.p50), ms(summary.p90), ms(summary.p99), ms(summary.p999), ms(summary.max), summary.mean.map { String(format: "%.2f", $0 / 1_000) } ?? "-"])
        }
        lines.append(Comparison.render(table).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        if !self.errorsByKind.isEmpty {
            lines.append("  errors: " + self.errorsByKind.map { "\($0.kind) \($0.count)" }.joined(separator: ", "))
        }
        if !self.backends.isEmpty {
            let shares = self.backends.map { "\($0.name) \($0.requests) (\(String(format: "%.1f", $0.share * 100))%)" + ($0.inServiceAtStart ? "" : " [joined later]") }
            lines.append("  backends: " + shares.joined(separator: ", "))
        }
        if let imbalance = self.imbalance, let cov = self.coefficientOfVariation, let jain = self.jainIndex {
            lines.append(String(format: "  imbalance: max/mean %.3f, CoV %.4f, Jain %.4f", imbalance, cov, jain) + (self.imbalancePerSecond.map { String(format: "; max/mean per second %.3f", $0) } ?? ""))
        }
        if let retries = self.retriesPerRequest {
            let verb = self.run.countedRequests == nil ? "recorded" : "counted"
            lines.append(String(format: "  proxy: %d requests %@, %.4f retries per request", self.proxyRequests, verb, retries))
        }
        if let hops = self.hops {
            let span = { (span: RunReport.Span) in
                "\(span.p50.map(String.init) ?? "-")/\(span.p99.map(String.init) ?? "-")/\(span.mean.map { String(format: "%.0f", $0) } ?? "-")"
            }
            lines.append(
                "  hops (us, p50/p99/mean): due to pick \(span(hops.clientToPick)), pick to upstream \(span(hops.pickToUpstream)), "
                    + "upstream \(span(hops.upstream)), proxy to client \(span(hops.proxyToClient))"
            )
        }
        if self.ejectSeconds != nil || self.readmitSeconds != nil {
            let eject = self.ejectSeconds.map { String(format: "%.2f s", $0) } ?? "-"
            let readmit = self.readmitSeconds.map { String(format: "%.2f s", $0) } ?? "-"
            lines.append("  after faults: ejected in \(eject), readmitted in \(readmit)")
        }
        if self.remappedOnAdd != nil || self.remappedOnRemove != nil {
            let add = self.remappedOnAdd.map { String(format: "%.1f%%", $0 * 100) } ?? "-"
            let remove = self.remappedOnRemove.map { String(format: "%.1f%%", $0 * 100) } ?? "-"
            lines.append("  keys moved to another backend: \(add) when one was added, \(remove) when one was removed")
        }
        if let steal = self.hostSteal {
            lines.append(String(format: "  host: the hypervisor took %.1f%% of the CPU time (steal)", steal * 100) + (steal > Self.stealWarning ? "; latency figures are not reliable, repeat the run" : ""))
        }
        if run.droppedRecords > 0 { lines.append("  \(run.droppedRecords) records were dropped (the store could not keep up)") }
        return lines.joined(separator: "\n")
    }
}
