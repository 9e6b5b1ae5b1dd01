import Benchmark
import LBCore

/// Nanoseconds per pick for every algorithm at 3, 100 and 1000 backends, release build.
///
/// Each measured iteration runs 1000 picks (`scalingFactor: .kilo`); the tool reports time and
/// throughput per pick, so the wall-clock rows read in nanoseconds per pick and the throughput rows in
/// picks per second (`bench/pickers.sh` turns the latter into the table of `bench/RESULTS.md`). The backends are all
/// healthy and idle except that each carries a fixed number of in-flight requests and a latency
/// estimate, so load-aware pickers have real comparisons to make; keys vary per pick, so hash
/// lookups are not served from one cache line.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: 100_000
    )
    for count in [3, 100, 1000] {
        for algorithm in Algorithm.allCases {
            Benchmark("pick \(algorithm.name) n=\(count)") { benchmark in
                // Building the picker (a Maglev table, a hash ring) stays outside the measurement.
                var picker = try algorithm.makePicker(PickerParameters())
                picker.rebuild(makeBackends(count))
                var key: UInt64 = 0x9E37_79B9_7F4A_7C15
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    key &+= 0x9E37_79B9_7F4A_7C15
                    let request = PickRequest(now: Instant(nanoseconds: 1_000_000_000), clientKey: key, hashKey: key)
                    blackHole(picker.pick(request))
                }
            }
        }
    }
}

func makeBackends(_ count: Int) -> [Backend] {
    (0..<count).map { index in
        let state = BackendState(name: "backend-\(index)")
        for _ in 0..<(index % 7) {
            state.requestStarted()
        }
        state.observeLatency(.microseconds(500 + 37 * (index % 11)), now: Instant(nanoseconds: 1), decay: .seconds(10))
        state.setResourceUsage(Double(index % 13) / 13, now: Instant(nanoseconds: 1))
        return Backend(state: state, weight: Double(1 + index % 3))
    }
}
