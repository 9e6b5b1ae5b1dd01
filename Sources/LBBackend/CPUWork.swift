#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// CPU burnt on purpose, so that a backend's CPU limit shapes its latency.
enum CPUWork {
    /// Spins until this thread has used `duration` of CPU time. Measured in the thread's own CPU time
    /// (`CLOCK_THREAD_CPUTIME_ID`), not wall time: under a CPU quota the thread is throttled and the
    /// same work takes longer, as it would for a real service.
    static func spin(_ duration: Duration) {
        let target = Self.threadCPUNanos() + duration.nanoseconds
        var sink: UInt64 = 0x9E37_79B9_7F4A_7C15
        while Self.threadCPUNanos() < target {
            for _ in 0..<256 {
                sink = sink &* 6_364_136_223_846_793_005 &+ 1
            }
        }
        withExtendedLifetime(sink) {}
    }

    static func threadCPUNanos() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
