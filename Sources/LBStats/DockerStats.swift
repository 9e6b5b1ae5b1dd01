public import Foundation
public import LBCore
public import NIOCore

/// A container's counters from the Docker Engine API (`GET /containers/NAME/stats?stream=false`), for
/// backends that run as Docker containers (compose.yml): CPU used and throttled, memory in use (less the
/// page cache, as `docker stats` shows it), processes, and network bytes.
public struct DockerStats: Sendable, Hashable {
    /// CPU time of every process in the container.
    public var cpuUsageMicros: Int64?
    /// Time held back by the container's CPU quota.
    public var cpuThrottledMicros: Int64?
    /// Memory in use, page cache excluded.
    public var memoryBytes: Int64?
    /// Processes (and threads) in the container.
    public var pids: Int?
    /// Bytes received on every network interface.
    public var rxBytes: Int64?
    /// Bytes sent on every network interface.
    public var txBytes: Int64?

    /// The default socket of the Docker Engine.
    public static let defaultSocket = "/var/run/docker.sock"

    /// Asks the engine on `socket` for one sample of container `name`.
    public static func read(container name: String, socket: String = Self.defaultSocket, group: any EventLoopGroup) async throws(SocketHTTP.Failure) -> DockerStats {
        let path = "/containers/\(name)/stats?stream=false&one-shot=true"
        let answer = try await SocketHTTP.call("GET", .unix(socket), path, timeout: .seconds(2), group: group)
        guard answer.status == 200 else {
            throw SocketHTTP.Failure(what: "GET unix:\(socket)\(path)", reason: "status \(answer.status): \(answer.body.prefix(200))")
        }
        guard let stats = Self.parse(Data(answer.body.utf8)) else {
            throw SocketHTTP.Failure(what: "GET unix:\(socket)\(path)", reason: "not a stats object: \(answer.body.prefix(200))")
        }
        return stats
    }

    /// Reads a stats object of the Engine API (cgroup v1 and v2 hosts both: v2 has no `cache` but
    /// `inactive_file`).
    public static func parse(_ json: Data) -> DockerStats? {
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else { return nil }
        func number(_ value: Any?) -> Int64? { (value as? NSNumber)?.int64Value }
        let cpu = object["cpu_stats"] as? [String: Any]
        let usage = cpu?["cpu_usage"] as? [String: Any]
        let throttling = cpu?["throttling_data"] as? [String: Any]
        let memory = object["memory_stats"] as? [String: Any]
        let memoryDetail = memory?["stats"] as? [String: Any]
        let cache = number(memoryDetail?["inactive_file"]) ?? number(memoryDetail?["cache"]) ?? 0
        let networks = (object["networks"] as? [String: Any])?.values.compactMap { $0 as? [String: Any] } ?? []
        func sum(_ key: String) -> Int64? {
            networks.isEmpty ? nil : ProcessStats.sum(networks.compactMap { number($0[key]) })
        }
        guard let total = number(usage?["total_usage"]) else { return nil }
        return DockerStats(
            cpuUsageMicros: total / 1_000,
            cpuThrottledMicros: number(throttling?["throttled_time"]).map { $0 / 1_000 },
            memoryBytes: number(memory?["usage"]).flatMap { usage in
                let (less, overflow) = usage.subtractingReportingOverflow(cache)
                return overflow ? nil : max(0, less)
            },
            pids: number((object["pids_stats"] as? [String: Any])?["current"]).map(Int.init),
            rxBytes: sum("rx_bytes"),
            txBytes: sum("tx_bytes")
        )
    }

    /// The sample as a row of `samples`, for `source`.
    public func sample(tMicros: Int64, source: String) -> ResourceSample {
        ResourceSample(
            tMicros: tMicros, source: source, cpuUsageMicros: self.cpuUsageMicros, cpuThrottledMicros: self.cpuThrottledMicros,
            rssBytes: self.memoryBytes, rxBytes: self.rxBytes, txBytes: self.txBytes
        )
    }
}
