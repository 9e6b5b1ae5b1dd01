#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The cgroups of one `lbctl run`: a parent cgroup `lblab-PID` holding one container per backend, in
/// v2's unified hierarchy or in each v1 controller's (see ``CgroupLayout``).
///
/// ``removeAll()`` removes every container and the parent once their processes are gone; a parent
/// left by a run that crashed is removed by the next run's ``init(layout:)`` when its process no longer
/// exists.
public final class CgroupGroup: Sendable {
    /// The layout the containers are made in.
    public let layout: CgroupLayout
    /// The parent's directories: one in v2, one per distinct v1 controller directory.
    public let directories: [String]

    /// Makes the parent cgroup of this process's containers (and removes stale ones of dead runs).
    public init(layout: CgroupLayout) throws(CgroupError) {
        self.layout = layout
        let name = "lblab-\(getpid())"
        let bases = Self.bases(layout)
        for base in bases { Self.removeStale(in: base) }
        self.directories = bases.map { "\($0)/\(name)" }
        for directory in self.directories {
            try Self.makeDirectory(directory)
        }
        if layout.version == .v2, let mount = layout.unifiedMount {
            // Controllers reach a cgroup only when its parent hands them down.
            try Self.write("+cpu +memory", to: "\(mount)/cgroup.subtree_control")
            try Self.write("+cpu +memory", to: "\(self.directories[0])/cgroup.subtree_control")
        }
    }

    /// Where each parent goes: the unified root, or this process's cgroup in each v1 controller.
    static func bases(_ layout: CgroupLayout) -> [String] {
        switch layout.version {
        case .v2: return [layout.unifiedMount ?? "/sys/fs/cgroup"]
        case .v1: return Array(Set(layout.controllerDirectories.values)).sorted()
        }
    }

    /// A container called `name` with at most `cpuLimit` cores and `memoryLimit` bytes (`nil`: no limit).
    public func makeContainer(name: String, cpuLimit: Double?, memoryLimit: Int64?) throws(CgroupError) -> CgroupContainer {
        let period = 100_000
        switch self.layout.version {
        case .v2:
            let directory = "\(self.directories[0])/\(name)"
            try Self.makeDirectory(directory)
            if let cpuLimit { try Self.write("\(Int((cpuLimit * Double(period)).rounded())) \(period)", to: "\(directory)/cpu.max") }
            if let memoryLimit { try Self.write("\(memoryLimit)", to: "\(directory)/memory.max") }
            return CgroupContainer(name: name, version: .v2, cpuDirectory: directory, cpuacctDirectory: directory, memoryDirectory: directory)
        case .v1:
            func child(_ controller: String) -> String {
                let base = self.layout.controllerDirectories[controller] ?? self.layout.controllerDirectories["cpu"]!
                return "\(base)/lblab-\(getpid())/\(name)"
            }
            let (cpu, cpuacct, memory) = (child("cpu"), child("cpuacct"), child("memory"))
            for directory in Set([cpu, cpuacct, memory]) { try Self.makeDirectory(directory) }
            if let cpuLimit {
                try Self.write("\(period)", to: "\(cpu)/cpu.cfs_period_us")
                try Self.write("\(Int((cpuLimit * Double(period)).rounded()))", to: "\(cpu)/cpu.cfs_quota_us")
            }
            if let memoryLimit { try Self.write("\(memoryLimit)", to: "\(memory)/memory.limit_in_bytes") }
            return CgroupContainer(name: name, version: .v1, cpuDirectory: cpu, cpuacctDirectory: cpuacct, memoryDirectory: memory)
        }
    }

    /// Removes every container (waiting up to `timeout` for their processes to be gone) and the parent.
    /// Returns the directories that could not be removed.
    @discardableResult
    public func removeAll(timeout: Duration = .seconds(2)) -> [String] {
        let deadline = ContinuousClock.now + timeout
        var left: [String] = []
        for directory in self.directories {
            let children = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for child in children where Self.isDirectory("\(directory)/\(child)") {
                if !Self.removeDirectory("\(directory)/\(child)", until: deadline) { left.append("\(directory)/\(child)") }
            }
            if !Self.removeDirectory(directory, until: deadline) { left.append(directory) }
        }
        return left
    }

    /// Removes `lblab-PID` cgroups in `base` whose process is gone, with their (empty) containers.
    private static func removeStale(in base: String) {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where entry.hasPrefix("lblab-") {
            guard let pid = Int32(entry.dropFirst("lblab-".count)), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            let directory = "\(base)/\(entry)"
            for child in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where Self.isDirectory("\(directory)/\(child)") {
                rmdir("\(directory)/\(child)")
            }
            rmdir(directory)
        }
    }

    private static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// `rmdir`, retried while the kernel still counts exiting processes in the cgroup.
    private static func removeDirectory(_ path: String, until deadline: ContinuousClock.Instant) -> Bool {
        while true {
            if rmdir(path) == 0 || errno == ENOENT { return true }
            if errno != EBUSY || ContinuousClock.now >= deadline { return false }
            usleep(20_000)
        }
    }

    static func makeDirectory(_ path: String) throws(CgroupError) {
        if mkdir(path, 0o755) != 0, errno != EEXIST {
            throw .failed(path: path, reason: String(cString: strerror(errno)))
        }
    }

    /// Writes `text` to a cgroup file in one `write`, as the kernel wants.
    static func write(_ text: String, to path: String) throws(CgroupError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .failed(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw .failed(path: path, reason: String(cString: strerror(errno))) }
    }
}

/// One backend's container: its cgroup directories, the file a process writes its PID to in order to
/// join, and the counters it is sampled from.
public struct CgroupContainer: Sendable, Hashable {
    /// The backend's name.
    public let name: String
    /// The cgroup version.
    public let version: CgroupLayout.Version
    /// Where the CPU limit and throttling counters are (`cpu.max`/`cpu.stat`, or v1's `cpu` controller).
    public let cpuDirectory: String
    /// Where CPU usage is counted (v1's `cpuacct`; the same directory in v2).
    public let cpuacctDirectory: String
    /// Where memory is limited and counted.
    public let memoryDirectory: String

    /// The `cgroup.procs` files a process writes its PID to, to join every controller of the container.
    public var procsFiles: [String] {
        Array(Set([self.cpuDirectory, self.cpuacctDirectory, self.memoryDirectory])).sorted().map { "\($0)/cgroup.procs" }
    }

    /// The processes in the container.
    public var pids: [Int32] {
        let text = (try? String(contentsOfFile: "\(self.memoryDirectory)/cgroup.procs", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    /// The container's counters now, or `nil` when its files are gone.
    public func stats() -> CgroupStats? {
        switch self.version {
        case .v2:
            guard let cpu = Self.read("\(self.cpuDirectory)/cpu.stat").map(ProcessStats.keyedCounters) else { return nil }
            return CgroupStats(
                cpuUsageMicros: cpu["usage_usec"],
                cpuThrottledMicros: cpu["throttled_usec"],
                throttledPeriods: cpu["nr_throttled"],
                memoryBytes: Self.read("\(self.memoryDirectory)/memory.current").flatMap(Self.number)
            )
        case .v1:
            guard let usage = Self.read("\(self.cpuacctDirectory)/cpuacct.usage").flatMap(Self.number) else { return nil }
            let cpu = Self.read("\(self.cpuDirectory)/cpu.stat").map(ProcessStats.keyedCounters) ?? [:]
            return CgroupStats(
                cpuUsageMicros: usage / 1_000,
                cpuThrottledMicros: cpu["throttled_time"].map { $0 / 1_000 },
                throttledPeriods: cpu["nr_throttled"],
                memoryBytes: Self.read("\(self.memoryDirectory)/memory.usage_in_bytes").flatMap(Self.number)
            )
        }
    }

    private static func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }

    private static func number(_ text: String) -> Int64? {
        Int64(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// A container's counters: CPU used and throttled (cumulative), memory in use (gauge).
public struct CgroupStats: Sendable, Hashable {
    /// CPU time used by every process of the container.
    public var cpuUsageMicros: Int64?
    /// Time the container was held back by its CPU quota.
    public var cpuThrottledMicros: Int64?
    /// Quota periods in which it was throttled.
    public var throttledPeriods: Int64?
    /// Memory charged to the container (v2 `memory.current`, v1 `memory.usage_in_bytes`).
    public var memoryBytes: Int64?
}
