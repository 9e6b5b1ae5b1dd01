import Foundation
import LBConfig
import LBCore
import Testing

@testable import LBSim

/// The CPU model of `sim:`: a backend's CPU quota (its cgroup's, 100 ms periods), the CPU it spends
/// after an answer, and the host's cores (`host-cpus`) that backends' threads and every hop share.
/// Deterministic scenarios (fixed latencies, constant arrivals), so each figure follows by arithmetic.
@Suite("simulator: CPU quotas and host cores")
struct HostCPUTests {
    static func simulate(_ text: String, requests: Int? = nil) throws -> (records: InMemoryRecordSink.Contents, outcome: SimOutcome) {
        let scenario = try Scenario.parse(text, file: "cpu.yml")
        let sink = InMemoryRecordSink()
        var settings = SimulationSettings(scenario: scenario, seed: scenario.seed)
        settings.requestLimit = requests
        var simulation = try Simulation(scenario: scenario, entry: scenario.algorithms[0], settings: settings, sink: sink)
        let outcome = simulation.run()
        return (sink.snapshot, outcome)
    }

    static func quotaScenario(after: String?) -> String {
        """
        name: quota
        seed: 1
        duration: 10s
        algorithms: [round-robin]
        backends: [{name: b1, cpu: 1ms, limits: {cpu: 0.5}}]
        load: {clients: 1, total-rate: 400, arrival: constant, timeout: 1h}
        sim: {backend-cpu: 0s\(after.map { ", backend-cpu-after: \($0)" } ?? "")}
        """
    }

    @Test("a backend's CPU after its answers counts against its quota: 2 ms a request at half a core is 250 a second")
    func cpuAfterAnswerUsesQuota() throws {
        // 4,000 requests in 10 s. With 1 ms of work each under a 0.5-core quota the backend serves up
        // to 500 a second: the last is answered just after the load ends. With 1 ms more after each
        // answer, booked against the same quota, it serves 250 a second and needs 4,000 / 250 = 16 s.
        let (_, light) = try Self.simulate(Self.quotaScenario(after: nil))
        #expect(light.requests == 4_000)
        #expect(abs(light.virtualTime.seconds - 10) < 0.05)
        let (records, heavy) = try Self.simulate(Self.quotaScenario(after: "1ms"))
        #expect(heavy.requests == 4_000)
        // Within one quota period (100 ms) of 16 s.
        #expect(abs(heavy.virtualTime.seconds - 16) < 0.1)
        // Its samples count both as its CPU, which the quota holds at half a core from the first
        // period on (0.8 cores asked for): at t, 0.5 t, give or take a period's quota (50 ms).
        let samples = records.samples.filter { $0.source == "b1" && (1_000_000...15_000_000).contains($0.tMicros) }
        #expect(samples.count > 40)
        for sample in samples {
            #expect(abs((sample.cpuUsageMicros ?? 0) - sample.tMicros / 2) <= 52_000)
        }
    }

    @Test("backend-cpu-wake is spent when a CPU thread wakes for a job, not when it goes from one job to the next")
    func wakeCostOnlyWhenIdle() throws {
        // 1 ms of work a request on one thread, 1 ms more to wake. At 100 requests a second the thread
        // sleeps between jobs and spends 2 ms on each: 0.2 cores. At 2,000 a second it never sleeps
        // after the first: 1 core, as without the wake.
        for (rate, wake, cores) in [(100, "1ms", 0.2), (100, "0s", 0.1), (2_000, "1ms", 1.0)] {
            let text = """
                name: wake
                seed: 1
                duration: 2s
                algorithms: [round-robin]
                backends: [{name: b1, cpu: 1ms}]
                load: {clients: 1, total-rate: \(rate), arrival: constant, timeout: 1h}
                sample-interval: 100ms
                sim: {backend-cpu: 0s, backend-cpu-wake: \(wake)}
                """
            let (records, _) = try Self.simulate(text)
            let samples = records.samples.filter { $0.source == "b1" && (500_000...1_500_000).contains($0.tMicros) }
            #expect(samples.count >= 9)
            for sample in samples {
                let expected = Double(sample.tMicros) * cores
                #expect(abs(Double(sample.cpuUsageMicros ?? 0) - expected) <= 2_000, "rate \(rate), wake \(wake): \(sample.tMicros) µs: \(sample.cpuUsageMicros ?? 0)")
            }
        }
    }

    @Test("a backend's threads share its quota: one that starts after another used up the period's waits for the next")
    func threadsShareTheQuota() throws {
        // Two threads under a 0.1-core quota (10 ms each 100 ms), 8 ms of work a request, a request every
        // 25 ms. The first runs 0–8 ms. The second, at 25 ms, has 2 ms of the period left (25–27 ms) and
        // its other 6 ms at 100–106 ms: 81 ms. The third, at 50 ms, finds the period used up and the
        // next with 4 ms left: 100–104 and 200–204 ms, 154 ms. (Had the ledger started the period over
        // for it, it would have run 50–58 ms.)
        let text = """
            name: shared
            seed: 1
            duration: 1s
            algorithms: [round-robin]
            backends: [{name: b1, cpu: 8ms, threads: 2, limits: {cpu: 0.1}}]
            load: {clients: 1, total-rate: 40, arrival: constant, timeout: 1h}
            sim: {backend-cpu: 0s}
            """
        let (records, outcome) = try Self.simulate(text, requests: 3)
        #expect(outcome.requests == 3)
        let byDue = records.requests.sorted { $0.intendedMicros < $1.intendedMicros }
        #expect(byDue.map { Int($0.doneMicros - $0.intendedMicros) } == [8_000, 81_000, 154_000])
    }

    @Test("a thread throttled by its quota gives the host's core up while it waits for its next period")
    func throttledThreadFreesItsCore() throws {
        // One core for two backends. `slow` does 50 ms of work under a 0.1-core quota: 10 ms in each
        // 100 ms period, so each of its jobs spans five periods. `fast` needs 1 ms of CPU. Were the
        // throttled thread to keep the core, `fast` would wait behind it for up to 400 ms; it waits at
        // most the 10 ms `slow` runs in a period.
        let text = """
            name: throttled
            seed: 3
            duration: 60s
            algorithms: [round-robin]
            backends:
              - {name: slow, cpu: 50ms, limits: {cpu: 0.1}}
              - {name: fast, cpu: 1ms}
            load: {clients: 1, total-rate: 2, arrival: poisson, timeout: 1h}
            sim: {host-cpus: 1, backend-cpu: 0s}
            """
        let (records, outcome) = try Self.simulate(text)
        #expect(outcome.requests > 90)
        let byBackend = Dictionary(grouping: records.requests) { $0.backendID ?? 0 }
        let slow = try #require(byBackend[1]).map { $0.doneMicros - $0.intendedMicros }
        let fast = try #require(byBackend[2]).map { $0.doneMicros - $0.intendedMicros }
        #expect(slow.count > 40 && fast.count > 40)
        // Never faster than its quota allows: a job that starts at phase p of a period runs 10 ms there
        // (or up to the period's end) and 10 ms in each of the next four, so it needs 410 ms − p, at
        // least 310 ms; one that waits behind another takes longer.
        #expect(slow.allSatisfy { $0 >= 310_000 } && slow.min()! <= 410_000)
        #expect(fast.allSatisfy { (1_000...11_000).contains($0) })
    }

    @Test("with wakeup-wait 1, a request that comes while the only core is busy waits for it, whichever backend it goes to")
    func hopWaitsForACore() throws {
        // One core; `cpu` burns 10 ms per request, `idle` none. Requests every 5 ms (at 0, 5 and 10 ms),
        // round robin: whichever backend the first goes to, one request for `idle` comes while a `cpu`
        // job holds the core; the `idle` backend's event loop waits for it (5 ms) before it reads the
        // request, as the chance per held core is 1. The others find the core free when they come.
        // With no `wakeup-wait`, none waits.
        let text = """
            name: hop
            seed: 1
            duration: 1s
            algorithms: [round-robin]
            backends: [{name: cpu, cpu: 10ms}, {name: idle}]
            load: {clients: 1, total-rate: 200, arrival: constant, timeout: 1h}
            sim: {host-cpus: 1, backend-cpu: 0s, wakeup-wait: WAIT}
            """
        for (wait, idleMax) in [(1, 5_000), (0, 0)] {
            let (records, outcome) = try Self.simulate(text.replacingOccurrences(of: "WAIT", with: "\(wait)"), requests: 3)
            #expect(outcome.requests == 3)
            let latencies = records.requests.map { (backend: $0.backendID, micros: $0.doneMicros - $0.intendedMicros) }
            #expect(latencies.filter { $0.backend == 1 }.allSatisfy { $0.micros == 10_000 })
            #expect(latencies.filter { $0.backend == 2 }.map(\.micros).max() == Int64(idleMax))
        }
    }

    @Test("with cpu-slice, CPU threads that want the only core take turns at it; alone, a thread runs on")
    func threadsTakeTurns() throws {
        // One core; each backend burns 3 ms a request, and a request comes every 0.5 ms, each to the
        // other backend (round robin). First come, first served, the first runs 0–3 ms and the second,
        // due at 0.5 ms, waits and runs 3–6 ms: 3 and 5.5 ms. In turns of 1 ms the threads alternate
        // (0–1 first, 1–2 second, 2–3 first, 3–4 second, 4–5 first: done; 5–6 second: done): 5 and
        // 5.5 ms. A request alone runs its 3 ms in three slices without a break.
        for (slice, requests, expected) in [("", 2, [3_000, 5_500]), (", cpu-slice: 1ms", 2, [5_000, 5_500]), (", cpu-slice: 1ms", 1, [3_000])] {
            let (backends, latencies) = try Self.twoBackends(cpu: ("3ms", "3ms"), sim: "host-cpus: 1" + slice, requests: requests)
            #expect(latencies == expected, "\(slice)")
            #expect(backends == Array([1, 2].prefix(requests)))
        }
    }

    /// Backends `a` and `b` burning `cpu` a request, a request every 0.5 ms to each in turn (round
    /// robin), no delays and no CPU besides: the backend ids and latencies (µs) of the first
    /// `requests`, by due time.
    static func twoBackends(cpu: (String, String), sim: String, requests: Int) throws -> (backends: [Int], micros: [Int]) {
        let text = """
            name: two
            seed: 1
            duration: 1s
            algorithms: [round-robin]
            backends: [{name: a, cpu: \(cpu.0)}, {name: b, cpu: \(cpu.1)}]
            load: {clients: 1, total-rate: 2000, arrival: constant, timeout: 1h}
            sim: {backend-cpu: 0s, \(sim)}
            """
        let (records, outcome) = try Self.simulate(text, requests: requests)
        #expect(outcome.requests == requests)
        let byDue = records.requests.sorted { $0.intendedMicros < $1.intendedMicros }
        return (byDue.compactMap(\.backendID), byDue.map { Int($0.doneMicros - $0.intendedMicros) })
    }

    @Test("with cpu-stacking 1, a CPU thread that wakes while another's work holds a core waits for that core, though another is free")
    func threadStacksOnAHeldCore() throws {
        // Two cores; `a` burns 3 ms a request, `b` 1 ms. The first request (to `a`) comes at 0, the
        // second (to `b`) at 0.5 ms, when `a`'s work holds one core and the other is free. Unstacked,
        // `b` runs at once: 1 ms. Stacked on `a`'s core, it waits for it: 3–4 ms, 3.5 ms. Stacked with
        // 1 ms slices, it runs when `a`'s first slice ends (1–2 ms: 1.5 ms), and `a`, which gave it its
        // core, waits on that core's queue though the other is free, until `b` is done: 2–4 ms, 4 ms.
        for (model, expected) in [("", [3_000, 1_000]), (", cpu-stacking: 1", [3_000, 3_500]), (", cpu-stacking: 1, cpu-slice: 1ms", [4_000, 1_500])] {
            let (backends, latencies) = try Self.twoBackends(cpu: ("3ms", "1ms"), sim: "host-cpus: 2" + model, requests: 2)
            #expect(backends == [1, 2])
            #expect(latencies == expected, "\(model)")
        }
    }

    @Test("preemptions come as a Poisson process over a CPU thread's work, each adding its length to the job")
    func preemptionsStretchWork() throws {
        // One backend, 1 ms of work a request at 100 a second (its thread is idle when each comes),
        // preempted 1,000 times a second of its work for 100 µs each: the preemptions during a job are
        // Poisson with mean 1, so each latency is 1 ms + k × 0.1 ms, their mean 1.1 ms (standard error
        // 0.1 ms / √2,000 = 2.2 µs), and a share e⁻¹ = 0.368 of the jobs is not preempted (standard
        // error 0.011). Bounds at five standard errors.
        let text = """
            name: preempted
            seed: 4
            duration: 20s
            algorithms: [round-robin]
            backends: [{name: b1, cpu: 1ms}]
            load: {clients: 1, total-rate: 100, arrival: constant, timeout: 1h}
            sim: {backend-cpu: 0s, preemptions: {per-second: 1000, each: 100us}}
            """
        let (records, _) = try Self.simulate(text)
        let latencies = records.requests.map { Int($0.doneMicros - $0.intendedMicros) }
        #expect(latencies.count >= 1_990)
        #expect(latencies.allSatisfy { $0 >= 1_000 && ($0 - 1_000) % 100 == 0 })
        let mean = Double(latencies.reduce(0, +)) / Double(latencies.count)
        #expect(abs(mean - 1_100) <= 11, "mean \(mean) µs")
        let unpreempted = Double(latencies.filter { $0 == 1_000 }.count) / Double(latencies.count)
        #expect(abs(unpreempted - 0.368) <= 0.055, "\(unpreempted) not preempted")
    }

    @Test("cpu-slice and cpu-stacking are refused without host-cpus, and out of range, naming the field")
    func cpuSliceNeedsHostCPUs() throws {
        let base = "name: w\nduration: 1s\nalgorithms: [round-robin]\nbackends: {count: 1}\nload: {clients: 1, rate: 1}\n"
        for (sim, message) in [
            ("sim: {cpu-slice: 1ms}", "give host-cpus too"), ("sim: {host-cpus: 2, cpu-slice: 0s}", "at least"),
            ("sim: {cpu-stacking: 0.2}", "give host-cpus too"), ("sim: {host-cpus: 2, cpu-stacking: 2}", "cpu-stacking"),
            ("sim: {preemptions: {each: 100us}}", "needs per-second"),
        ] {
            #expect {
                try Scenario.parse(base + sim, file: "w.yml")
            } throws: { error in
                "\(error)".contains("w.yml:6") && "\(error)".contains(message)
            }
        }
    }

    @Test("wakeup-wait is refused without host-cpus, and out of 0...1, naming the field")
    func wakeupWaitNeedsHostCPUs() throws {
        let base = "name: w\nduration: 1s\nalgorithms: [round-robin]\nbackends: {count: 1}\nload: {clients: 1, rate: 1}\n"
        for (sim, message) in [("sim: {wakeup-wait: 0.1}", "give host-cpus too"), ("sim: {host-cpus: 2, wakeup-wait: 1.5}", "wakeup-wait")] {
            #expect {
                try Scenario.parse(base + sim, file: "w.yml")
            } throws: { error in
                "\(error)".contains("w.yml:6") && "\(error)".contains(message)
            }
        }
    }
}
