#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// What `/proc/PID` says about one process: CPU time, resident memory, open descriptors, and bytes read
/// and written through system calls.
public struct ProcessStats: Sendable, Hashable {
    /// User and system CPU time of all its threads.
    public var cpuMicros: Int64
    /// Resident set size (`VmRSS`).
    public var rssBytes: Int64
    /// Open file descriptors (entries of `/proc/PID/fd`; `nil` when not allowed to list them).
    public var openFDs: Int?
    /// Bytes read through `read`-like calls, sockets included (`rchar` of `/proc/PID/io`).
    public var readBytes: Int64?
    /// Bytes written through `write`-like calls, sockets included (`wchar`).
    public var writtenBytes: Int64?

    /// Reads the stats of process `pid` under `procRoot`; `nil` when the process does not exist (or is a
    /// zombie, whose memory is gone).
    public static func read(pid: Int32, procRoot: String = "/proc") -> ProcessStats? {
        let directory = "\(procRoot)/\(pid)"
        guard let stat = try? String(contentsOfFile: "\(directory)/stat", encoding: .utf8),
            let status = try? String(contentsOfFile: "\(directory)/status", encoding: .utf8),
            let cpu = Self.cpuMicros(statLine: stat, ticksPerSecond: Self.ticksPerSecond)
        else { return nil }
        guard let rss = Self.statusKilobytes(status, field: "VmRSS") else { return nil }
        let io = (try? String(contentsOfFile: "\(directory)/io", encoding: .utf8)).map(Self.keyedCounters) ?? [:]
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/fd"))?.count
        return ProcessStats(cpuMicros: cpu, rssBytes: rss * 1024, openFDs: fds, readBytes: io["rchar"], writtenBytes: io["wchar"])
    }

    /// Clock ticks per second of `/proc/PID/stat`'s times.
    static let ticksPerSecond = Int64(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in microseconds. The command name
    /// (field 2) is in parentheses and may hold spaces and parentheses, so fields count from the last `)`.
    static func cpuMicros(statLine: String, ticksPerSecond: Int64) -> Int64? {
        guard let close = statLine.lastIndex(of: ")"), ticksPerSecond > 0 else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ")
        // After ")": field 3 (state) is at index 0, so field n is at index n - 3.
        guard fields.count > 12, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return nil }
        return Self.micros(ticks: [user, system], ticksPerSecond: ticksPerSecond)
    }

    /// The sum of `ticks` in microseconds; `nil` for a negative count, or a sum past Int64 (which no
    /// kernel reports, but a number read from a file is not trusted to stay in range).
    static func micros(ticks: [Int64], ticksPerSecond: Int64) -> Int64? {
        guard ticks.allSatisfy({ $0 >= 0 }), let sum = Self.sum(ticks) else { return nil }
        let (scaled, overflow) = sum.multipliedReportingOverflow(by: 1_000_000)
        return overflow ? nil : scaled / ticksPerSecond
    }

    /// The sum of counters read from outside, or `nil` when it is past Int64: no figure rather than a
    /// trap.
    static func sum(_ counters: [Int64]) -> Int64? {
        var total: Int64 = 0
        for value in counters {
            let (next, overflow) = total.addingReportingOverflow(value)
            guard !overflow else { return nil }
            total = next
        }
        return total
    }

    /// A `kB` field of `/proc/PID/status`, e.g. `VmRSS:    1234 kB`.
    static func statusKilobytes(_ status: String, field: String) -> Int64? {
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            return line.dropFirst(field.count + 1).split(whereSeparator: \.isWhitespace).first.flatMap { Int64($0) }
        }
        return nil
    }

    /// `key value` or `key: value` lines as numbers (`/proc/PID/io`, cgroup `cpu.stat`, `memory.stat`).
    static func keyedCounters(_ text: String) -> [String: Int64] {
        var counters: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == ":" })
            if parts.count >= 2, let value = Int64(parts[parts.count - 1]) {
                counters[String(parts[0])] = value
            }
        }
        return counters
    }
}
