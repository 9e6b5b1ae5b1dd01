import Foundation
import LBConfig
import LBCore
import Testing

@testable import LBSim

/// The simulator against queueing theory: backends as M/M/1, M/M/c and M/D/1 queues, whose figures
/// have closed forms. Each bound is the tolerance the issue sets; each run is long enough that the
/// standard error of its estimate (by batch means, or from the theory) is under a quarter of that
/// bound, and the tests check that too, so a bound that holds does so by more than noise. Fixed seeds.
@Suite("simulator vs queueing theory")
struct QueueingTheoryTests {
    /// A scenario of one client sending Poisson arrivals at `rate` per second to `backends`.
    static func scenario(backends: String, rate: Double, algorithm: String = "round-robin", seed: Int = 17, extra: String = "") throws -> Scenario {
        try Scenario.parse(
            """
            name: theory
            seed: \(seed)
            duration: 1000000s
            algorithms: [\(algorithm)]
            backends: \(backends)
            load: {clients: 1, total-rate: \(rate), arrival: poisson, timeout: 1h}
            \(extra)
            """,
            file: "theory.yml"
        )
    }

    /// Runs `requests` requests of `scenario`'s first algorithm, the first tenth as warm-up (out of the
    /// figures), in batches of a fortieth of the rest.
    static func run(_ scenario: Scenario, requests: Int) throws -> (tally: SimTally, simulation: Simulation) {
        var settings = SimulationSettings(scenario: scenario, seed: scenario.seed)
        settings.requestLimit = requests
        let rate = scenario.load.totalRate
        settings.warmup = .nanoseconds(Int64(Double(requests) / 10 / rate * 1e9))
        settings.duration = .seconds(Int64(Double(requests) / rate * 2) + 10)
        settings.keepsRecords = false
        settings.batchSize = requests * 9 / 10 / 40
        var simulation = try Simulation(scenario: scenario, entry: scenario.algorithms[0], settings: settings, sink: nil)
        let outcome = simulation.run()
        #expect(outcome.completed && outcome.requests == requests)
        #expect(outcome.tally.failed == 0)
        return (outcome.tally, simulation)
    }

    static func within(_ measured: Double, _ theory: Double, _ tolerance: Double) -> Bool {
        abs(measured / theory - 1) < tolerance
    }

    @Test("M/M/1 at rho = 0.5 and 0.9: mean sojourn within 2% of 1/(mu - lambda), p99 within 3% of ln(100)/(mu - lambda)", arguments: [0.5, 0.9])
    func mm1(rho: Double) throws {
        // mu = 1000/s (exponential 1 ms), lambda = rho mu. The sojourn time of a FIFO M/M/1 queue is
        // exponential with rate mu - lambda (Kleinrock, Queueing Systems I, 1975, §3.2), so its mean is
        // 1/(mu - lambda) and its p-quantile -ln(1 - p)/(mu - lambda). Near saturation the sojourn times
        // are strongly correlated (relaxation time ~ 1/(mu (1 - sqrt rho)^2), 380 ms at 0.9): 15 M
        // requests there put the batch-means standard error of the mean near 0.4%.
        let mu = 1_000.0
        let lambda = rho * mu
        let scenario = try Self.scenario(backends: "[{name: b1, latency: exponential(1ms), capacity: 1}]", rate: lambda)
        let (tally, _) = try Self.run(scenario, requests: rho < 0.8 ? 2_000_000 : 15_000_000)
        let mean = tally.meanLatencyNanos / 1e9
        let p99 = Double(tally.latency.valueAtPercentile(99)) / 1e9
        #expect(Self.within(mean, 1 / (mu - lambda), 0.02), "mean \(mean) s against \(1 / (mu - lambda))")
        #expect(Self.within(p99, log(100) / (mu - lambda), 0.03), "p99 \(p99) s against \(log(100) / (mu - lambda))")
        let error = try #require(tally.meanLatencyStandardError) / tally.meanLatencyNanos
        #expect(error < 0.02 / 4, "standard error \(error) of the mean")
    }

    @Test("M/M/c, c = 4, rho = 0.8: mean wait within 3% of the Erlang C formula")
    func mmc() throws {
        // Four places (capacity 4) of exponential 1 ms service: mu = 1000/s each, lambda = 0.8 * 4 * mu.
        // Erlang C (Kleinrock 1975, eq. 3.40): P(wait) = (a^c / c!) / (1 - rho) / (sum_{k<c} a^k / k! +
        // (a^c / c!) / (1 - rho)) with a = lambda / mu; mean wait Wq = P(wait) / (c mu - lambda).
        let (c, mu, rho) = (4, 1_000.0, 0.8)
        let lambda = rho * Double(c) * mu
        let a = lambda / mu
        func factorial(_ n: Int) -> Double { n <= 1 ? 1 : Double(n) * factorial(n - 1) }
        let top = pow(a, Double(c)) / factorial(c) / (1 - rho)
        let bottom = (0..<c).map { pow(a, Double($0)) / factorial($0) }.reduce(0, +) + top
        let wait = top / bottom / (Double(c) * mu - lambda)
        let scenario = try Self.scenario(backends: "[{name: b1, latency: exponential(1ms), capacity: 4}]", rate: lambda)
        let (tally, _) = try Self.run(scenario, requests: 8_000_000)
        let measured = tally.meanWaitNanos / 1e9
        #expect(Self.within(measured, wait, 0.03), "mean wait \(measured) s against Erlang C \(wait) s")
        // The wait is the sojourn less the service; its standard error is the sojourn's, relative to the
        // (smaller) wait.
        let error = try #require(tally.meanLatencyStandardError) / tally.meanWaitNanos
        #expect(error < 0.03 / 4, "standard error \(error) of the mean wait")
    }

    @Test("M/D/1 at rho = 0.8: mean wait within 2% of Pollaczek-Khinchine")
    func md1() throws {
        // Fixed 1 ms service: E[S^2] = 1/mu^2, so Pollaczek-Khinchine's Wq = lambda E[S^2] / (2 (1 - rho))
        // = rho / (2 mu (1 - rho)) (Kleinrock 1975, eq. 5.72), half of M/M/1's.
        let (mu, rho) = (1_000.0, 0.8)
        let lambda = rho * mu
        let wait = rho / (2 * mu * (1 - rho))
        let scenario = try Self.scenario(backends: "[{name: b1, latency: 1ms, capacity: 1}]", rate: lambda)
        let (tally, _) = try Self.run(scenario, requests: 6_000_000)
        let measured = tally.meanWaitNanos / 1e9
        #expect(Self.within(measured, wait, 0.02), "mean wait \(measured) s against P-K \(wait) s")
        let error = try #require(tally.meanLatencyStandardError) / tally.meanWaitNanos
        #expect(error < 0.02 / 4, "standard error \(error) of the mean wait")
    }

    @Test("random over 4 single-server backends: each is an M/M/1 queue with lambda/4 (Poisson splitting)")
    func poissonSplitting() throws {
        // Random routing of a Poisson stream splits it into independent Poisson streams of rate lambda/N
        // (Kleinrock 1975, §4.8), so each backend is an M/M/1 queue at rho = lambda / (N mu) = 0.6:
        // mean sojourn 1/(mu - lambda/N) = 2.5 ms, a quarter of the requests each.
        let (n, mu, lambda) = (4, 1_000.0, 2_400.0)
        let scenario = try Self.scenario(backends: "{count: \(n), latency: exponential(1ms), capacity: 1}", rate: lambda, algorithm: "random")
        let requests = 4_000_000
        let (tally, _) = try Self.run(scenario, requests: requests)
        let theory = 1 / (mu - lambda / Double(n))
        for backend in 0..<n {
            let share = Double(tally.perBackend[backend]) / Double(tally.requests)
            // A binomial share of 3.6 M requests: sd 0.00023.
            #expect(abs(share - 0.25) < 0.002, "b\(backend + 1): share \(share)")
            let mean = tally.meanLatencyNanos(backend: backend) / 1e9
            #expect(Self.within(mean, theory, 0.02), "b\(backend + 1): mean sojourn \(mean) s against \(theory) s")
        }
    }

    @Test("balls into bins: 10,000 requests that never finish over 10,000 backends; random's fullest ~ ln n / ln ln n, power-of-two's ~ ln ln n / ln 2")
    func ballsIntoBins() throws {
        // n balls into n bins: uniform random choice leaves a fullest bin of (1 + o(1)) ln n / ln ln n
        // (Raab and Steger 1998); the better of two random bins, ln ln n / ln 2 + O(1) (Azar, Broder,
        // Karlin and Upfal 1999). For n = 10,000: 4.15 and 3.2. Each request is a ball that stays.
        let n = 10_000
        let lnn = log(Double(n))
        var fullest: [String: Int] = [:]
        for algorithm in ["random", "power-of-two"] {
            // No samples: 10,000 backends every 250 ms for the hour the clients wait would be most of the
            // work. The proxy waits longer than the clients for its backends' answers.
            let scenario = try Self.scenario(backends: "{count: \(n), latency: 100h}", rate: 1_000, algorithm: algorithm, extra: "sample-interval: 100h\nproxy: {timeouts: {response-header: 2h}}")
            var settings = SimulationSettings(scenario: scenario, seed: 3)
            settings.requestLimit = n
            settings.keepsRecords = false
            var simulation = try Simulation(scenario: scenario, entry: scenario.algorithms[0], settings: settings, sink: nil)
            _ = simulation.run()
            let loads = simulation.backends.map(\.state.inFlight)
            #expect(loads.reduce(0, +) == n)
            fullest[algorithm] = loads.max()
        }
        let random = try #require(fullest["random"])
        let twoChoices = try #require(fullest["power-of-two"])
        // Random: at least ln n / ln ln n, and no more than twice it (lower-order terms add ~2 at this n).
        #expect(Double(random) >= lnn / log(lnn) && Double(random) <= 2 * lnn / log(lnn), "random's fullest: \(random)")
        // Two choices: ln ln n / ln 2 + O(1), with the O(1) at most 1 here.
        #expect(Double(twoChoices) >= log(lnn) / log(2) - 1 && Double(twoChoices) <= log(lnn) / log(2) + 1, "power-of-two's fullest: \(twoChoices)")
        #expect(random - twoChoices >= 2, "the gap: \(random) against \(twoChoices)")
    }

    @Test("Little's law: the sampled requests in flight average lambda times the mean sojourn")
    func littlesLaw() throws {
        // L = lambda W for any stable queue (Little 1961). M/M/1 at rho = 0.5, lambda = 500/s: W = 2 ms,
        // L = 1. Samples every 250 ms (the scenario's sample interval) are ~20 relaxation times apart,
        // nearly independent, each of variance rho / (1 - rho)^2 = 2: over 3,600 s of window, 14,400
        // samples give a standard error of 0.012, so a 5% bound is 4 of them.
        let scenario = try Self.scenario(backends: "[{name: b1, latency: exponential(1ms), capacity: 1}]", rate: 500)
        let (tally, _) = try Self.run(scenario, requests: 2_000_000)
        let lambda = Double(tally.requests) / 3_600
        let little = lambda * tally.meanLatencyNanos / 1e9
        #expect(abs(tally.meanInFlight - little) / little < 0.05, "sampled L \(tally.meanInFlight) against lambda W \(little)")
        #expect(tally.inFlightSamples > 14_000)
    }
}
