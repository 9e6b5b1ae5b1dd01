import LBCore
import Testing

@Suite("Least connections, power of two, peak EWMA, least resources")
struct LoadAwarePickerTests {
    @Test("least connections never picks a backend with more in-flight per weight than another eligible one")
    func leastConnectionsInvariant() throws {
        let weights = (0..<20).map { Double(1 + $0 % 4) }
        var cluster = try Cluster(.leastConnections, count: 20, weights: weights)
        var generator = SeededGenerator(seed: 99)
        var open: [Int] = []
        for step in 0..<20_000 {
            if step % 97 == 0 {
                let victim = generator.index(below: 20)
                cluster.backends[victim].state.setHealthy(!cluster.backends[victim].state.isHealthy)
            }
            // Start slightly more often than finish, so queues build up and drain.
            if open.isEmpty || generator.index(below: 100) < 55 {
                let picked = cluster.pick()
                let index = try #require(picked)
                let chosen = cluster.backends[index]
                for other in cluster.backends where other.isEligible {
                    // inFlight/weight compared without division.
                    #expect(Double(chosen.state.inFlight) * other.weight <= Double(other.state.inFlight) * chosen.weight)
                }
                chosen.state.requestStarted()
                open.append(index)
            } else {
                open.swapAt(generator.index(below: open.count), open.count - 1)
                cluster.finish(open.removeLast())
            }
        }
    }

    @Test("least connections breaks ties uniformly at random")
    func leastConnectionsTies() throws {
        var cluster = try Cluster(.leastConnections, count: 4)
        let counts = cluster.counts(40_000)
        // Multinomial, p = 1/4: σ = √(40000·¼·¾) ≈ 87; 5σ ≈ 433.
        for count in counts {
            #expect(abs(count - 10_000) <= 433)
        }
    }

    @Test("least connections with weights 1, 2, 3 fills backends in proportion to weight")
    func leastConnectionsWeighted() throws {
        var cluster = try Cluster(.leastConnections, count: 3, weights: [1, 2, 3])
        for _ in 0..<600 { _ = cluster.start() }
        #expect(cluster.backends.map(\.state.inFlight) == [100, 200, 300])
    }

    @Test("power of two skips down backends and prefers the less loaded of its two draws")
    func powerOfTwoPrefersIdle() throws {
        var cluster = try Cluster(.powerOfTwo, count: 2)
        for _ in 0..<10 { cluster.backends[0].state.requestStarted() }
        // With two backends both are always drawn, so the idle one always wins.
        #expect(cluster.counts(1_000) == [0, 1_000])
        cluster.backends[1].state.setHealthy(false)
        #expect(cluster.counts(100) == [100, 0])
    }

    /// A virtual-time run: requests arrive every `gap`, each backend serves in its fixed latency with
    /// no queueing limit, and the picker hears of each completion.
    func simulate(
        _ algorithm: Algorithm,
        latencies: [Duration],
        gap: Duration,
        requests: Int,
        settle: Int
    ) throws -> [Int] {
        var parameters = PickerParameters()
        parameters.seed = 31
        var cluster = try Cluster(algorithm, count: latencies.count, parameters: parameters)
        var pending: [(done: Instant, index: Int, latency: Duration)] = []
        var counts = Array(repeating: 0, count: latencies.count)
        for request in 0..<requests {
            let now = Instant.zero + gap * request
            pending.sort { $0.done < $1.done }
            while let first = pending.first, first.done <= now {
                pending.removeFirst()
                cluster.finish(first.index, latency: first.latency, now: first.done)
            }
            let picked = cluster.start(PickRequest(now: now))
            let index = try #require(picked)
            pending.append((now + latencies[index], index, latencies[index]))
            if request >= settle { counts[index] += 1 }
        }
        return counts
    }

    @Test("peak EWMA sends under 5% of requests to a backend ten times slower once the averages settle")
    func peakEWMAAvoidsSlowBackend() throws {
        let latencies: [Duration] = [.milliseconds(2), .milliseconds(2), .milliseconds(2), .milliseconds(2), .milliseconds(20)]
        // 1,000 req/s for 30 s of virtual time; the first 2 s let every estimate form.
        let counts = try simulate(.peakEWMA, latencies: latencies, gap: .milliseconds(1), requests: 30_000, settle: 2_000)
        let slowShare = Double(counts[4]) / Double(counts.sum)
        #expect(slowShare < 0.05, "slow backend share \(slowShare), counts \(counts)")
        // The same traffic under round robin gives it its fair fifth: the difference is the algorithm.
        let roundRobin = try simulate(.roundRobin, latencies: latencies, gap: .milliseconds(1), requests: 10_000, settle: 0)
        #expect(roundRobin[4] == 2_000)
    }

    @Test("peak EWMA reacts at once to a slowdown: the peak replaces the average")
    func peakEWMAPeak() {
        let state = BackendState(name: "b")
        let decay = Duration.seconds(10)
        state.observeLatency(.milliseconds(1), now: Instant(nanoseconds: 1_000), decay: decay)
        state.observeLatency(.milliseconds(50), now: Instant(nanoseconds: 2_000), decay: decay)
        let estimate = state.latencyEstimate(now: Instant(nanoseconds: 2_000), decay: decay)!
        #expect(abs(estimate - 50e6) < 1)
        // A fast sample one τ later blends in with weight 1 − e⁻¹.
        let later = Instant(nanoseconds: 2_000) + decay
        state.observeLatency(.milliseconds(1), now: later, decay: decay)
        let blended = state.latencyEstimate(now: later, decay: decay)!
        let expected = 50e6 * 0.36787944117144233 + 1e6 * (1 - 0.36787944117144233)
        #expect(abs(blended - expected) < 1)
        // And left alone for another τ it decays by e⁻¹ toward zero.
        let idle = state.latencyEstimate(now: later + decay, decay: decay)!
        #expect(abs(idle - expected * 0.36787944117144233) < 1)
    }

    @Test("least resources fills backends so that use × (in-flight + 1) stays level")
    func leastResources() throws {
        var cluster = try Cluster(.leastResources, count: 3)
        let usage = [0.9, 0.1, 0.5]
        for (backend, use) in zip(cluster.backends, usage) { backend.state.setResourceUsage(use, now: .zero) }
        #expect(cluster.pick() == 1)
        for _ in 0..<100 { _ = cluster.start() }
        // Greedy levelling of uᵢ·(kᵢ + 1) with Σ kᵢ = 100: (kᵢ + 1) = c/uᵢ with c = 103 / Σ 1/uᵢ.
        let c = 103 / usage.map { 1 / $0 }.reduce(0, +)
        for (backend, use) in zip(cluster.backends, usage) {
            #expect(abs(Double(backend.state.inFlight) - (c / use - 1)) <= 1.5, "\(backend.name): \(backend.state.inFlight)")
        }
    }

    @Test("least resources without figures, or with figures past their age, balances as least connections")
    func leastResourcesWithoutFigures() throws {
        var cluster = try Cluster(.leastResources, count: 3)
        // No figure yet: every backend counts as fully used, so in-flight requests decide.
        for _ in 0..<30 { _ = cluster.start() }
        #expect(cluster.backends.map(\.state.inFlight) == [10, 10, 10])
        // A figure counts until it is older than the maximum age (2 s by default), then no more.
        let state = cluster.backends[0].state
        state.setResourceUsage(0.2, now: Instant(nanoseconds: 1_000))
        #expect(state.resourceUsage(now: Instant(nanoseconds: 1_000) + .seconds(2), maxAge: .seconds(2)) == 0.2)
        #expect(state.resourceUsage(now: Instant(nanoseconds: 1_001) + .seconds(2), maxAge: .seconds(2)) == nil)
        #expect(state.lastResourceUsage?.usage == 0.2 && state.lastResourceUsage?.at == Instant(nanoseconds: 1_000))
        // b0's fresh 0.2 against the others' unknown (1 × 11 in flight + 1): b0 takes every request while
        // 0.2 × (k + 1) < 11, from k = 10 to k = 53: 44 of them.
        var picked: [Int] = []
        for _ in 0..<44 { picked.append(cluster.start(PickRequest(now: Instant(nanoseconds: 1_000) + .seconds(1)))!) }
        #expect(picked.allSatisfy { $0 == 0 }, "\(picked)")
        // Once the figure is stale, b0 counts as fully used again and the others, with fewer in flight, win.
        let late = PickRequest(now: Instant(nanoseconds: 1_000) + .seconds(3))
        #expect(cluster.pick(late) != 0)
    }
}
