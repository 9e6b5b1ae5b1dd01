import Testing

@testable import LBProxy

@Suite("When an event loop gives its core away (CoreYield)")
struct CoreYieldTests {
    /// The times of `ticks` (uptime nanoseconds) at which a loop with `interval` yields.
    private func yields(_ interval: Duration, at ticks: [UInt64]) -> [UInt64] {
        var coreYield = CoreYield(interval: interval)
        return ticks.filter { coreYield.isDue(at: $0) }
    }

    @Test("at most once per interval: the first tick yields, then the first tick an interval after the last yield")
    func oncePerInterval() {
        let ms: UInt64 = 1_000_000
        let ticks: [UInt64] = [5 * ms, 5 * ms + 10, 5 * ms + ms - 1, 6 * ms, 6 * ms + 1, 6 * ms + 999_999, 7 * ms + 500, 20 * ms]
        #expect(yields(.milliseconds(1), at: ticks) == [5 * ms, 6 * ms, 7 * ms + 500, 20 * ms])
        #expect(yields(.microseconds(250), at: ticks) == [5 * ms, 5 * ms + ms - 1, 6 * ms + 999_999, 20 * ms])
    }

    @Test("0s never yields, however far apart the ticks")
    func never() {
        #expect(yields(.zero, at: [0, 1, 1_000_000, 1_000_000_000, 5_000_000_000_000]).isEmpty)
    }

    @Test("a reload's new interval counts from the last yield; 0s stops it, and a new interval starts it again")
    func retimed() {
        var coreYield = CoreYield(interval: .milliseconds(1))
        var due: [Bool] = []
        due.append(coreYield.isDue(at: 10_000_000))
        coreYield.retime(.milliseconds(5))
        due.append(coreYield.isDue(at: 12_000_000))
        due.append(coreYield.isDue(at: 15_000_000))
        coreYield.retime(.zero)
        due.append(coreYield.isDue(at: 100_000_000))
        coreYield.retime(.microseconds(100))
        due.append(coreYield.isDue(at: 100_000_000))
        due.append(coreYield.isDue(at: 100_050_000))
        #expect(due == [true, false, true, false, true, false])
        #expect(coreYield.intervalNanos == 100_000)
    }
}
