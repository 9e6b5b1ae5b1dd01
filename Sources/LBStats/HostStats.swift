import Foundation

/// The whole machine's CPU time from `/proc/stat`: time spent busy, and time the hypervisor gave to
/// others while this machine wanted to run (`steal`). On a virtual machine, steal is what makes two
/// runs of the same experiment differ: a run with much of it has slower figures through no fault of
/// the algorithm, and says so.
public struct HostStats: Sendable, Hashable {
    /// User, nice, system, irq and softirq time of all CPUs.
    public var busyMicros: Int64
    /// Time taken by the hypervisor, all CPUs.
    public var stealMicros: Int64
    /// Every counter summed (idle and iowait included), all CPUs.
    public var totalMicros: Int64

    /// The counters now, or `nil` where `/proc/stat` cannot be read.
    public static func read(path: String = "/proc/stat") -> HostStats? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Self.parse(text, ticksPerSecond: ProcessStats.ticksPerSecond)
    }

    /// Parses the aggregate `cpu` line: `cpu user nice system idle iowait irq softirq steal guest guest_nice`.
    static func parse(_ text: String, ticksPerSecond: Int64) -> HostStats? {
        guard ticksPerSecond > 0, let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let fields = line.split(separator: " ").dropFirst().compactMap { Int64($0) }
        guard fields.count >= 8 else { return nil }
        // guest and guest_nice are already counted in user and nice.
        guard let busy = ProcessStats.micros(ticks: [fields[0], fields[1], fields[2], fields[5], fields[6]], ticksPerSecond: ticksPerSecond),
            let steal = ProcessStats.micros(ticks: [fields[7]], ticksPerSecond: ticksPerSecond),
            let total = ProcessStats.micros(ticks: Array(fields.prefix(8)), ticksPerSecond: ticksPerSecond)
        else { return nil }
        return HostStats(busyMicros: busy, stealMicros: steal, totalMicros: total)
    }
}
