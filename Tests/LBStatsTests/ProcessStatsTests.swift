import Foundation
import NIOCore
@testable import LBStats
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("/proc")
struct ProcessStatsTests {
    @Test("a stat line's CPU times are read after the command name, whatever it holds")
    func statLine() {
        // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
        let line = "4242 (a (strange) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 150 0 0 20 0 3 0 100 0 0"
        #expect(ProcessStats.cpuMicros(statLine: line, ticksPerSecond: 100) == 4_000_000)
        #expect(ProcessStats.statusKilobytes("Name:\tx\nVmRSS:\t   2048 kB\n", field: "VmRSS") == 2048)
        #expect(ProcessStats.keyedCounters("rchar: 10\nwchar: 20\n") == ["rchar": 10, "wchar": 20])
    }

    @Test("numbers past what a counter holds are no figure, not a crash: /proc lines, Docker's JSON, a chunk size")
    func outOfRange() throws {
        let max = String(Int64.max)
        #expect(ProcessStats.cpuMicros(statLine: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 \(max) 1 0 0 20 0 1 0 1 0 0", ticksPerSecond: 100) == nil)
        #expect(ProcessStats.cpuMicros(statLine: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 1 0 0 20 0 1 0 1 0 0", ticksPerSecond: 100) == nil)
        #expect(HostStats.parse("cpu  \(max) 5 50 1000 20 3 2 40 7 0\n", ticksPerSecond: 100) == nil)
        let docker = """
            {"cpu_stats":{"cpu_usage":{"total_usage":\(max)}},"memory_stats":{"usage":-\(max),"stats":{"cache":\(max)}},
             "networks":{"eth0":{"rx_bytes":\(max),"tx_bytes":1},"eth1":{"rx_bytes":\(max),"tx_bytes":2}}}
            """
        let stats = try #require(DockerStats.parse(Data(docker.utf8)))
        #expect(stats.rxBytes == nil && stats.txBytes == 3 && stats.memoryBytes == nil)
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nab\r\n0\r\n\r\n"
        #expect(try SocketHTTP.parse(ByteBuffer(string: chunked), what: "GET /x").body == "ab\r\n0\r\n\r\n")
    }

    @Test("this process: CPU time grows with work, memory and descriptors are counted, a gone PID is nil")
    func ownProcess() throws {
        let before = try #require(ProcessStats.read(pid: getpid()))
        var x: UInt64 = 1
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .milliseconds(300) { x = x &* 6364136223846793005 &+ 1 }
        #expect(x != 0)
        let descriptor = open("/dev/null", O_RDONLY)
        defer { close(descriptor) }
        let after = try #require(ProcessStats.read(pid: getpid()))
        // 300 ms of busy work shows as at least 200 ms at the kernel's tick granularity (10 ms).
        #expect(after.cpuMicros - before.cpuMicros >= 200_000)
        #expect(after.rssBytes > 1 << 20)
        #expect((after.openFDs ?? 0) >= (before.openFDs ?? 0) + 1)
        #expect(after.writtenBytes != nil)
        #expect(ProcessStats.read(pid: 0x7FFF_FFF0) == nil)
    }
}

@Suite("/proc/stat")
struct HostStatsTests {
    @Test("busy and steal from the aggregate cpu line, guest time not counted twice")
    func parse() throws {
        let text = "cpu  100 5 50 1000 20 3 2 40 7 0\ncpu0 50 2 25 500 10 1 1 20 0 0\nintr 1\n"
        let host = try #require(HostStats.parse(text, ticksPerSecond: 100))
        #expect(host.busyMicros == (100 + 5 + 50 + 3 + 2) * 10_000)
        #expect(host.stealMicros == 40 * 10_000)
        #expect(host.totalMicros == (100 + 5 + 50 + 1000 + 20 + 3 + 2 + 40) * 10_000)
        #expect(HostStats.read() != nil)
    }
}
