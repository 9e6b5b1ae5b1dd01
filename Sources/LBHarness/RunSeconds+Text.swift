import Foundation
public import LBStore

extension RunSeconds {
    /// The seconds as a table: requests, errors, p50 and p99 (ms), each backend's share of the answers
    /// (%), the CPU each backend and the proxy used (cores, `t` after it when it was throttled) and
    /// their resident memory (MB), and the events. With more than twelve backends, the largest and
    /// smallest share and the busiest backend's CPU stand for them.
    public func text() -> String {
        let few = self.backends.count <= 12
        let names = Dictionary(uniqueKeysWithValues: self.backends.map { ($0.id, $0.name) })
        var header = ["s", "req", "err", "p50 ms", "p99 ms"]
        header += few ? self.backends.map { "\($0.name) %" } : ["max %", "min %"]
        let processes = few ? self.backends.map(\.name) + ["proxy"] : ["proxy"]
        header += processes.map { "\($0) cpu" } + (few ? [] : ["busiest cpu"]) + processes.map { "\($0) MB" } + ["events"]
        var rows = [header]
        for second in self.seconds {
            var row = ["\(second.second)", "\(second.requests)", "\(second.errors)", Self.millis(second.p50), Self.millis(second.p99)]
            if few {
                row += self.backends.map { backend in second.shares[backend.id].map { String(format: "%.1f", $0 * 100) } ?? "-" }
            } else {
                let sorted = second.shares.sorted { $0.value > $1.value }
                row += [sorted.first, sorted.last].map { entry in entry.map { String(format: "%.1f %@", $0.value * 100, names[$0.key] ?? "?") } ?? "-" }
            }
            row += processes.map { self.cpu(second, $0) }
            if !few {
                let busiest = self.backends.map(\.name).max { (second.cores[$0] ?? 0) < (second.cores[$1] ?? 0) }
                row.append(busiest.map { "\(self.cpu(second, $0)) \($0)" } ?? "-")
            }
            row += processes.map { second.rssBytes[$0].map { String(format: "%.1f", Double($0) / 1_048_576) } ?? "-" }
            row.append(second.events.joined(separator: ", "))
            rows.append(row)
        }
        return Comparison.render(rows)
    }

    private func cpu(_ second: Second, _ source: String) -> String {
        guard let cores = second.cores[source] else { return "-" }
        let throttled = (second.throttled[source] ?? 0) > 0.001 ? "t" : ""
        return String(format: "%.2f", cores) + throttled
    }

    private static func millis(_ micros: Int64?) -> String {
        micros.map { String(format: "%.2f", Double($0) / 1_000) } ?? "-"
    }
}
