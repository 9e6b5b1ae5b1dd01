import LBCore
import Testing

/// What every picker promises, whatever its algorithm: nothing from an empty or fully ineligible set,
/// never an ineligible backend, 1 to 10,000 backends, membership and weight changes while in use, and
/// the same picks from the same seed.
@Suite("Every picker's contract")
struct PickerContractTests {
    @Test("an empty set gives none available", arguments: Algorithm.allCases)
    func emptySet(algorithm: Algorithm) throws {
        var cluster = try Cluster(algorithm, count: 0)
        #expect(cluster.pick() == nil)
        #expect(cluster.pick(PickRequest(now: .zero, clientKey: 7, hashKey: 9)) == nil)
    }

    @Test("all backends down, ejected, draining or at weight zero gives none available", arguments: Algorithm.allCases)
    func nothingEligible(algorithm: Algorithm) throws {
        var cluster = try Cluster(algorithm, count: 4)
        cluster.backends[0].state.setHealthy(false)
        cluster.backends[1].state.setEjected(true)
        cluster.backends[2].state.setDraining(true)
        cluster.backends[3].weight = 0
        cluster.rebuild()
        for i in 0..<50 {
            #expect(cluster.pick(PickRequest(now: .zero, clientKey: key(i), hashKey: key(i))) == nil)
        }
        cluster.backends[1].state.setEjected(false)
        for i in 0..<50 {
            #expect(cluster.pick(PickRequest(now: .zero, clientKey: key(i), hashKey: key(i))) == 1)
        }
    }

    @Test("an ineligible backend is never picked while health flips underneath", arguments: Algorithm.allCases)
    func neverIneligible(algorithm: Algorithm) throws {
        var cluster = try Cluster(algorithm, count: 12, weights: (0..<12).map { Double(1 + $0 % 4) })
        var generator = SeededGenerator(seed: 42)
        var picked = 0
        for i in 0..<5_000 {
            if i % 10 == 0 {
                let victim = generator.index(below: 12)
                cluster.backends[victim].state.setHealthy(!cluster.backends[victim].state.isHealthy)
            }
            let k = generator.next()
            if let index = cluster.start(PickRequest(now: Instant(nanoseconds: Int64(i) * 1_000_000), clientKey: k, hashKey: k)) {
                #expect(cluster.backends[index].isEligible, "\(algorithm) picked \(index), which is down")
                picked += 1
                if generator.index(below: 2) == 0 {
                    cluster.finish(index, now: Instant(nanoseconds: Int64(i) * 1_000_000))
                }
            } else {
                let anyEligible = cluster.backends.contains { $0.isEligible }
                #expect(!anyEligible, "\(algorithm) found none with some up")
            }
        }
        #expect(picked > 4_000)
    }

    @Test("one backend is always the one picked", arguments: Algorithm.allCases)
    func single(algorithm: Algorithm) throws {
        var cluster = try Cluster(algorithm, count: 1)
        for i in 0..<100 {
            #expect(cluster.start(PickRequest(now: .zero, clientKey: key(i), hashKey: key(i))) == 0)
        }
    }

    @Test("10,000 backends: every pick is a valid index and picks spread", arguments: Algorithm.allCases)
    func tenThousand(algorithm: Algorithm) throws {
        var cluster = try Cluster(algorithm, count: 10_000)
        var seen = Set<Int>()
        for i in 0..<2_000 {
            let picked = cluster.start(PickRequest(now: .zero, clientKey: key(i), hashKey: key(i)))
            let index = try #require(picked)
            #expect((0..<10_000).contains(index))
            seen.insert(index)
        }
        // 2,000 requests on 10,000 idle backends: any algorithm worth the name uses many of them.
        #expect(seen.count > 1_000, "\(algorithm) used only \(seen.count) backends")
    }

    @Test("backends added, removed and re-weighted while in use", arguments: Algorithm.allCases)
    func membershipChanges(algorithm: Algorithm) throws {
        var cluster = try Cluster(algorithm, count: 5)
        var inFlight: [(BackendState, Int)] = []
        for i in 0..<300 {
            if let index = cluster.start(PickRequest(now: .zero, clientKey: key(i), hashKey: key(i))) {
                inFlight.append((cluster.backends[index].state, index))
            }
            switch i {
            case 50:  // add two
                cluster.backends.append(Backend(state: BackendState(name: "b5"), weight: 1))
                cluster.backends.append(Backend(state: BackendState(name: "b6"), weight: 3))
                cluster.rebuild()
            case 100:  // remove the first, with requests still in flight on it
                cluster.backends.removeFirst()
                cluster.rebuild()
            case 150:  // re-weight
                for j in cluster.backends.indices { cluster.backends[j].weight = Double(1 + j) }
                cluster.rebuild()
            case 200:  // remove all but one
                cluster.backends.removeFirst(cluster.backends.count - 1)
                cluster.rebuild()
            default: break
            }
        }
        // Requests finishing on a backend that was removed still balance its counter.
        for (state, _) in inFlight {
            state.requestFinished()
        }
        #expect(inFlight.allSatisfy { $0.0.inFlight == 0 })
        #expect(cluster.backends.count == 1)
        #expect(cluster.pick(PickRequest(now: .zero, clientKey: 1, hashKey: 1)) == 0)
    }

    @Test("the same seed gives the same picks", arguments: Algorithm.allCases)
    func reproducible(algorithm: Algorithm) throws {
        var parameters = PickerParameters()
        parameters.seed = 2026
        func run() throws -> [Int?] {
            var cluster = try Cluster(algorithm, count: 20, weights: (0..<20).map { Double(1 + $0 % 3) }, parameters: parameters)
            var generator = SeededGenerator(seed: 1)
            return (0..<500).map { i in
                // Some requests carry no key, so hash pickers draw from their own generator.
                let k: UInt64? = i % 3 == 0 ? nil : generator.next()
                let index = cluster.start(PickRequest(now: .zero, clientKey: k, hashKey: k))
                if let index, i % 2 == 0 { cluster.finish(index) }
                return index
            }
        }
        #expect(try run() == run())
    }
}
