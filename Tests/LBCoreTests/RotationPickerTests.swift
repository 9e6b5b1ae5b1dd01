import LBCore
import Testing

@Suite("Round robin, smooth weighted round robin, sticky round robin")
struct RotationPickerTests {
    @Test("round robin visits each eligible backend exactly once per window and skips the down one")
    func roundRobin() throws {
        var cluster = Cluster(picker: RoundRobin(seed: 0), weights: [1, 1, 1, 1])
        let picked = cluster.pick()
        let first = try #require(picked)
        let window = [first] + (0..<3).compactMap { _ in cluster.pick() }
        #expect(Set(window) == [0, 1, 2, 3])
        #expect(window == (0..<4).map { (first + $0) % 4 })
        cluster.backends[2].state.setHealthy(false)
        let counts = cluster.counts(300)
        #expect(counts == [100, 100, 0, 100])
    }

    @Test("round robin resumes at the backend that was next when the set changes")
    func roundRobinRebuild() throws {
        var cluster = Cluster(picker: RoundRobin(seed: 0), weights: [1, 1, 1])
        _ = cluster.pick()
        let second = try #require(cluster.pick() as Int?)
        let nextName = cluster.names[(second + 1) % 3]
        // Add one at the front, so every index shifts: the rotation must follow the name, not the index.
        cluster.backends.insert(Backend(state: BackendState(name: "front")), at: 0)
        cluster.rebuild()
        let third = try #require(cluster.pick() as Int?)
        #expect(cluster.names[third] == nextName)
    }

    @Test("smooth WRR with weights 5, 1, 1 gives a a b a c a a every cycle")
    func smoothSequence() {
        var cluster = Cluster(picker: SmoothWeightedRoundRobin(), weights: [5, 1, 1])
        let letters = ["a", "b", "c"]
        for _ in 0..<10 {
            let cycle = (0..<7).map { _ in letters[cluster.pick()!] }
            #expect(cycle == ["a", "a", "b", "a", "c", "a", "a"])
        }
    }

    @Test("smooth WRR gives exact shares over any whole number of cycles", arguments: [1, 2, 7])
    func smoothShares(cycles: Int) {
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<20 {
            let weights = (0..<(2 + generator.index(below: 9))).map { _ in Double(1 + generator.index(below: 10)) }
            var cluster = Cluster(picker: SmoothWeightedRoundRobin(), weights: weights)
            let total = Int(weights.reduce(0, +))
            let counts = cluster.counts(total * cycles)
            #expect(counts == weights.map { Int($0) * cycles }, "weights \(weights)")
        }
    }

    @Test("smooth WRR gives exact shares in every window of W consecutive picks, not only aligned cycles")
    func smoothSlidingWindows() {
        let weights: [Double] = [3, 2, 1]
        var cluster = Cluster(picker: SmoothWeightedRoundRobin(), weights: weights)
        let picks = (0..<60).map { _ in cluster.pick()! }
        for start in 0...(picks.count - 6) {
            var counts = [0, 0, 0]
            for index in picks[start..<(start + 6)] { counts[index] += 1 }
            #expect(counts == [3, 2, 1], "window starting at \(start)")
        }
    }

    @Test("smooth WRR shares the remaining weights when a backend goes down")
    func smoothSkipsDown() {
        var cluster = Cluster(picker: SmoothWeightedRoundRobin(), weights: [5, 1, 1, 3])
        cluster.backends[0].state.setHealthy(false)
        #expect(cluster.counts(50) == [0, 10, 10, 30])
    }

    @Test("sticky round robin keeps each client on its backend and spreads new clients in rotation")
    func sticky() throws {
        var cluster = try Cluster(.stickyRoundRobin, count: 4)
        var home: [UInt64: Int?] = [:]
        for round in 0..<5 {
            for client in 0..<40 {
                let k = key(client)
                let index = cluster.pick(PickRequest(now: .zero, clientKey: k))
                if round == 0 { home[k] = index } else { #expect(home[k] == index) }
            }
        }
        var perBackend = Array(repeating: 0, count: 4)
        for index in home.values { perBackend[try #require(index)] += 1 }
        #expect(perBackend == [10, 10, 10, 10])
    }

    @Test("sticky clients move only when their backend goes down, and stay where they moved")
    func stickyFailover() throws {
        var cluster = try Cluster(.stickyRoundRobin, count: 3)
        let clients = (0..<30).map(key)
        let before = clients.map { cluster.pick(PickRequest(now: .zero, clientKey: $0)) }
        cluster.backends[1].state.setHealthy(false)
        let during = clients.map { cluster.pick(PickRequest(now: .zero, clientKey: $0)) }
        for (b, d) in zip(before, during) {
            if b == 1 { #expect(d != 1) } else { #expect(d == b) }
        }
        cluster.backends[1].state.setHealthy(true)
        let after = clients.map { cluster.pick(PickRequest(now: .zero, clientKey: $0)) }
        #expect(after == during)
    }

    @Test("sticky round robin remembers at most its capacity of clients")
    func stickyCapacity() throws {
        var picker = StickyRoundRobin(seed: 0, capacity: 100)
        picker.rebuild((0..<3).map { Backend(state: BackendState(name: "b\($0)")) })
        for client in 0..<10_000 {
            _ = picker.pick(PickRequest(now: .zero, clientKey: UInt64(client)))
        }
        #expect(picker.rememberedClients == 100)
    }
}
