import Benchmark
import HeapModule
import LBSim

/// The simulator's event queue against swift-collections' `Heap`, on the work a simulation gives it:
/// the hold model, where each step takes the earliest event and schedules one a random time later, so
/// that the queue keeps its size (100 events: a run of 100 single-server backends holds about that many;
/// 10,000: a run of thousands). Each measured iteration is 1,000 steps (`scalingFactor: .kilo`), so
/// the wall-clock rows read in nanoseconds per step. `bench/sim_speed.sh` runs it.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: 100_000
    )
    for size in [100, 10_000] {
        Benchmark("hold Heap n=\(size)") { benchmark in
            var heap = Heap<SimEvent>()
            var draws = Draws()
            var sequence: UInt64 = 0
            for _ in 0..<size {
                heap.insert(SimEvent(time: draws.gap(), sequence: sequence, kind: .served, subject: 0))
                sequence += 1
            }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let next = heap.removeMin()
                heap.insert(SimEvent(time: next.time + draws.gap(), sequence: sequence, kind: .served, subject: 0))
                sequence += 1
            }
            blackHole(heap.count)
        }
        Benchmark("hold EventHeap n=\(size)") { benchmark in
            let heap = EventHeap()
            var draws = Draws()
            var sequence: UInt64 = 0
            for _ in 0..<size {
                heap.insert(SimEvent(time: draws.gap(), sequence: sequence, kind: .served, subject: 0))
                sequence += 1
            }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let next = heap.popMin()!
                heap.insert(SimEvent(time: next.time + draws.gap(), sequence: sequence, kind: .served, subject: 0))
                sequence += 1
            }
            blackHole(heap.count)
        }
    }
}

/// Gaps of 0 to 2 ms from xorshift64 (the same stream for both queues).
struct Draws {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15

    mutating func gap() -> Int64 {
        self.state ^= self.state << 13
        self.state ^= self.state >> 7
        self.state ^= self.state << 17
        return Int64(self.state % 2_000_000)
    }
}
