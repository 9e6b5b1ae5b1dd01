import Foundation
@testable import LBStats
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("cgroups")
struct CgroupTests {
    /// This project's CI machine: v1 controllers on their own, a v2 mount without controllers.
    static let hybrid = """
        25 30 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec - tmpfs tmpfs rw,mode=755
        26 25 0:24 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        27 25 0:25 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        28 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        29 25 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """

    @Test("v1 with separate hierarchies: each controller's directory is this process's own cgroup in it")
    func v1Separate() throws {
        let own = "4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n"
        let layout = try CgroupLayout.detect(mountinfo: Self.hybrid, ownCgroups: own, controllersOf: { _ in "" }).get()
        #expect(layout.version == .v1)
        #expect(layout.controllerDirectories == [
            "cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "memory": "/sys/fs/cgroup/memory/process_api/abc",
        ])
    }

    @Test("v1 with cpu and cpuacct mounted together")
    func v1CoMounted() throws {
        let mountinfo = """
            26 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
            28 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
            """
        let own = "3:cpu,cpuacct:/user.slice\n2:memory:/user.slice\n"
        let layout = try CgroupLayout.detect(mountinfo: mountinfo, ownCgroups: own, controllersOf: { _ in nil }).get()
        #expect(layout.controllerDirectories["cpu"] == "/sys/fs/cgroup/cpu,cpuacct/user.slice")
        #expect(layout.controllerDirectories["cpuacct"] == layout.controllerDirectories["cpu"])
    }

    @Test("v2 is used when its root offers cpu and memory; a hybrid v2 mount without them is not")
    func v2() throws {
        let unified = "29 25 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
        let layout = try CgroupLayout.detect(mountinfo: unified, ownCgroups: "0::/user.slice\n") { path in
            path == "/sys/fs/cgroup" ? "cpuset cpu io memory pids\n" : nil
        }.get()
        #expect(layout.version == .v2 && layout.unifiedMount == "/sys/fs/cgroup")
        let withoutControllers = CgroupLayout.detect(mountinfo: unified, ownCgroups: "0::/\n") { _ in "pids\n" }
        #expect(throws: CgroupError.self) { try withoutControllers.get() }
    }

    /// A v2 tree in a temporary directory: the files a kernel would have, so that what the container
    /// writes and reads can be checked without privileges.
    @Test("v2 containers: cpu.max and memory.max written, usage and throttling read from cpu.stat")
    func v2Files() throws {
        let root = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "".write(toFile: "\(root)/cgroup.subtree_control", atomically: false, encoding: .utf8)
        let layout = CgroupLayout(version: .v2, unifiedMount: root, controllerDirectories: [:])
        let parentName = "lblab-\(getpid())"
        // The kernel makes these files when the directories are made; the test makes them first.
        try FileManager.default.createDirectory(atPath: "\(root)/\(parentName)/b1", withIntermediateDirectories: true)
        for file in ["cgroup.subtree_control", "b1/cpu.max", "b1/memory.max"] {
            _ = FileManager.default.createFile(atPath: "\(root)/\(parentName)/\(file)", contents: nil)
        }
        let group = try CgroupGroup(layout: layout)
        let container = try group.makeContainer(name: "b1", cpuLimit: 0.5, memoryLimit: 256 << 20)
        #expect(try String(contentsOfFile: "\(root)/\(parentName)/b1/cpu.max", encoding: .utf8) == "50000 100000")
        #expect(try String(contentsOfFile: "\(root)/\(parentName)/b1/memory.max", encoding: .utf8) == "268435456")
        #expect(try String(contentsOfFile: "\(root)/\(parentName)/cgroup.subtree_control", encoding: .utf8) == "+cpu +memory")
        #expect(container.procsFiles == ["\(root)/\(parentName)/b1/cgroup.procs"])
        try "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 12\nthrottled_usec 340000\n"
            .write(toFile: "\(root)/\(parentName)/b1/cpu.stat", atomically: false, encoding: .utf8)
        try "104857600\n".write(toFile: "\(root)/\(parentName)/b1/memory.current", atomically: false, encoding: .utf8)
        #expect(container.stats() == CgroupStats(cpuUsageMicros: 1_500_000, cpuThrottledMicros: 340_000, throttledPeriods: 12, memoryBytes: 100 << 20))
    }

    @Test("v1 containers: quota and period, memory limit, and v1's nanosecond counters")
    func v1Files() throws {
        let root = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = CgroupLayout(
            version: .v1,
            unifiedMount: nil,
            controllerDirectories: ["cpu": "\(root)/cpu", "cpuacct": "\(root)/cpuacct", "memory": "\(root)/memory/own"]
        )
        let parentName = "lblab-\(getpid())"
        for directory in ["cpu", "cpuacct", "memory/own"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(directory)/\(parentName)/b2", withIntermediateDirectories: true)
        }
        for file in ["cpu/\(parentName)/b2/cpu.cfs_period_us", "cpu/\(parentName)/b2/cpu.cfs_quota_us", "memory/own/\(parentName)/b2/memory.limit_in_bytes"] {
            _ = FileManager.default.createFile(atPath: "\(root)/\(file)", contents: nil)
        }
        let group = try CgroupGroup(layout: layout)
        #expect(group.directories.count == 3)
        let container = try group.makeContainer(name: "b2", cpuLimit: 1.5, memoryLimit: 64 << 20)
        #expect(try String(contentsOfFile: "\(root)/cpu/\(parentName)/b2/cpu.cfs_quota_us", encoding: .utf8) == "150000")
        #expect(try String(contentsOfFile: "\(root)/cpu/\(parentName)/b2/cpu.cfs_period_us", encoding: .utf8) == "100000")
        #expect(try String(contentsOfFile: "\(root)/memory/own/\(parentName)/b2/memory.limit_in_bytes", encoding: .utf8) == "67108864")
        #expect(container.procsFiles.count == 3)
        try "2500000000\n".write(toFile: "\(root)/cpuacct/\(parentName)/b2/cpuacct.usage", atomically: false, encoding: .utf8)
        try "nr_periods 50\nnr_throttled 7\nthrottled_time 820000000\n".write(toFile: "\(root)/cpu/\(parentName)/b2/cpu.stat", atomically: false, encoding: .utf8)
        try "8388608\n".write(toFile: "\(root)/memory/own/\(parentName)/b2/memory.usage_in_bytes", atomically: false, encoding: .utf8)
        #expect(container.stats() == CgroupStats(cpuUsageMicros: 2_500_000, cpuThrottledMicros: 820_000, throttledPeriods: 7, memoryBytes: 8 << 20))
    }

    /// On a machine where this process may make cgroups (CI runs as root with v1 writable): a busy loop
    /// in a container limited to 0.3 cores for 1 s uses about 0.3 s of CPU and is throttled.
    @Test("a live container limits a busy process to its CPU quota and is removed afterwards")
    func liveContainer() throws {
        guard getuid() == 0, case .success(let layout) = CgroupLayout.detect() else { return }
        let group: CgroupGroup
        do {
            group = try CgroupGroup(layout: layout)
        } catch {
            return  // cgroups exist but may not be written here
        }
        let container = try group.makeContainer(name: "busy", cpuLimit: 0.3, memoryLimit: 64 << 20)
        let procs = container.procsFiles.map { "echo $$ > \($0)" }.joined(separator: "; ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\(procs); end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done"]
        try process.run()
        Thread.sleep(forTimeInterval: 0.3)
        let before = try #require(container.stats())
        #expect(container.pids.contains(process.processIdentifier))
        Thread.sleep(forTimeInterval: 1.0)
        let after = try #require(container.stats())
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let used = Double((after.cpuUsageMicros ?? 0) - (before.cpuUsageMicros ?? 0)) / 1e6
        // 0.3 cores over 1 s is 0.3 s; the quota is enforced per 100 ms period, so allow a period either way.
        #expect(used > 0.15 && used < 0.45, "CPU used in 1 s: \(used) s")
        #expect((after.throttledPeriods ?? 0) > (before.throttledPeriods ?? 0), "the quota throttled it")
        #expect((after.memoryBytes ?? 0) > 0)
        #expect(group.removeAll().isEmpty)
        for directory in group.directories {
            #expect(!FileManager.default.fileExists(atPath: directory), "\(directory) removed")
        }
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "lblab-cgroup-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
