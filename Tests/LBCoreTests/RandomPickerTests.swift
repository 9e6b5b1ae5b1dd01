import LBCore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Random, weighted random, and balls into bins")
struct RandomPickerTests {
    /// Counts of m draws over k outcomes with probabilities p are within 5 standard deviations
    /// √(m·p·(1−p)) of m·p: for a fixed seed this cannot fail by chance, and a real bias of a few
    /// percent fails it.
    func expectMultinomial(_ counts: [Int], probabilities: [Double], sourceLocation: SourceLocation = #_sourceLocation) {
        let m = Double(counts.sum)
        for (count, p) in zip(counts, probabilities) {
            let sigma = (m * p * (1 - p)).squareRoot()
            #expect(abs(Double(count) - m * p) <= 5 * sigma + 1, "count \(count), expected \(m * p) ± \(5 * sigma)",
                    sourceLocation: sourceLocation)
        }
    }

    @Test("random is uniform over the eligible backends")
    func uniform() throws {
        var cluster = try Cluster(.random, count: 10)
        cluster.backends[3].state.setHealthy(false)
        let counts = cluster.counts(90_000)
        #expect(counts[3] == 0)
        expectMultinomial(counts.enumerated().filter { $0.offset != 3 }.map(\.element), probabilities: Array(repeating: 1.0 / 9, count: 9))
    }

    @Test("random stays uniform when most backends are down (the scan path)")
    func uniformWhenSparse() throws {
        var cluster = try Cluster(.random, count: 100)
        for index in 0..<100 where index % 25 != 0 { cluster.backends[index].state.setHealthy(false) }
        let counts = cluster.counts(40_000)
        let live = [0, 25, 50, 75].map { counts[$0] }
        #expect(live.sum == 40_000)
        expectMultinomial(live, probabilities: [0.25, 0.25, 0.25, 0.25])
    }

    @Test("weighted random picks in proportion to weight, also among the eligible remainder")
    func weighted() throws {
        var cluster = try Cluster(.weightedRandom, count: 4, weights: [1, 2, 3, 4])
        expectMultinomial(cluster.counts(100_000), probabilities: [0.1, 0.2, 0.3, 0.4])
        cluster.backends[3].state.setHealthy(false)
        let counts = cluster.counts(60_000)
        #expect(counts[3] == 0)
        expectMultinomial(Array(counts.prefix(3)), probabilities: [1.0 / 6, 2.0 / 6, 3.0 / 6])
    }

    /// m = 100,000 requests that never finish, on n = 1,000 backends (m/n = 100).
    func ballsIntoBins(_ algorithm: Algorithm) throws -> (max: Int, mean: Double) {
        var parameters = PickerParameters()
        parameters.seed = 12_345
        var cluster = try Cluster(algorithm, count: 1_000, parameters: parameters)
        for _ in 0..<100_000 {
            #expect(cluster.start() != nil)
        }
        let loads = cluster.backends.map(\.state.inFlight)
        return (loads.max()!, Double(loads.sum) / 1_000)
    }

    @Test("balls into bins: power of two keeps max − mean ≤ 5, random leaves about √(2·(m/n)·ln n)")
    func powerOfTwoVersusRandom() throws {
        let n = 1_000.0
        let perBin = 100.0
        // Heavily loaded case (Berenbrink, Czumaj, Steger, Vöcking 2006): with d = 2 the gap is
        // ln ln n / ln 2 + O(1) ≈ 2.8 + O(1), independent of m.
        let twoChoices = try ballsIntoBins(.powerOfTwo)
        #expect(Double(twoChoices.max) - twoChoices.mean <= 5)
        // One random choice (Raab and Steger 1998): gap ≈ √(2·(m/n)·ln n·(1 − ln ln n/(2 ln n))) ≈ 34.5
        // for n = 1000, m/n = 100. Its fluctuations are of order √(m/n)/√(2 ln n) ≈ 2.7, so [25, 50]
        // holds with a wide margin and still shows the gap is some seven times the two-choice bound.
        let random = try ballsIntoBins(.random)
        let expectedGap = (2 * perBin * log(n) * (1 - log(log(n)) / (2 * log(n)))).squareRoot()
        #expect(abs(expectedGap - 34.5) < 0.5)
        let gap = Double(random.max) - random.mean
        #expect(gap >= 25 && gap <= 50, "random gap \(gap), literature \(expectedGap)")
    }

    @Test("power of d choices: more draws, smaller gap")
    func moreDraws() throws {
        var parameters = PickerParameters()
        parameters.draws = 4
        parameters.seed = 5
        var cluster = try Cluster(.powerOfTwo, count: 1_000, parameters: parameters)
        for _ in 0..<100_000 { _ = cluster.start() }
        let loads = cluster.backends.map(\.state.inFlight)
        // ln ln n / ln 4 ≈ 1.4 + O(1).
        #expect(loads.max()! - 100 <= 3)
    }
}
