import Benchmark
import Foundation
import LBCore
import LBStore

/// Request rows per second through the results store, end to end: one producer hands 1,000,000
/// records to a ``RunRecorder`` and the run is finished, which returns once every row is in the file
/// (WAL, synchronous=NORMAL, a fresh file per iteration, as `sqlite_insert.c` of the baselines does).
/// Each iteration is ``rowsPerIteration`` rows, so rows per second = 10⁶ / the wall-clock milliseconds
/// per iteration × 1000. `bench/store.sh` runs this beside the C baseline and prints the ratio.
let rowsPerIteration = 1_000_000

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput],
        timeUnits: .microseconds,
        maxDuration: .seconds(30),
        maxIterations: 5
    )
    Benchmark("store requests") { benchmark in
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-store-bench.db").path
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: path + suffix)
        }
        let database = try ResultsDatabase.open(path: path)
        let clientIPs = (0..<50).map { "203.0.113.\($0 + 1)" }
        benchmark.startMeasurement()
        let recorder = try database.beginRun(RunInfo(kind: .loadgen))
        for i in 0..<rowsPerIteration {
            let base = Int64(i) * 50
            recorder.record(
                RequestRecord(
                    id: Int64(i), clientID: Int32(i % 50), clientIP: clientIPs[i % 50], intendedMicros: base,
                    sentMicros: base + 3, firstByteMicros: base + 900, doneMicros: base + 950, status: 200,
                    backendID: i % 3, attempts: 1, bytesIn: 120, bytesOut: 80, error: nil
                )
            )
        }
        let outcome = try recorder.finish(status: .completed, durationMicros: nil)
        benchmark.stopMeasurement()
        precondition(outcome.dropped == 0 && outcome.written == rowsPerIteration)
    }
}
