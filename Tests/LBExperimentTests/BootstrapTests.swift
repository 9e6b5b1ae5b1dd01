import Foundation
import LBCore
import Testing

@testable import LBExperiment

@Suite("BCa bootstrap intervals")
struct BootstrapTests {
    /// `count` draws of a normal distribution (Box–Muller).
    static func normalSample(_ count: Int, mean: Double, sd: Double, using generator: inout SeededGenerator) -> [Double] {
        (0..<count).map { _ in
            let u = 1 - generator.unitInterval()
            let v = generator.unitInterval()
            return mean + sd * (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
    }

    @Test("the normal quantile function inverts the CDF")
    func normal() {
        #expect(abs(Normal.quantile(0.975) - 1.959_963_985) < 1e-8)
        #expect(abs(Normal.quantile(0.5)) < 1e-12)
        #expect(abs(Normal.quantile(0.001) + 3.090_232_306) < 1e-8)
        #expect(abs(Normal.quantile(0.99) - 2.326_347_874) < 1e-8)
        for p in [1e-9, 0.01, 0.2, 0.7, 0.999_999] { #expect(abs(Normal.cdf(Normal.quantile(p)) - p) < 1e-12 * max(1, 1 / p)) }
    }

    @Test("Student's t tails and the bootstrap's expected coverage at small samples")
    func studentT() {
        // Tables: P(|T| ≥ 2.776) = 0.05 with 4 degrees of freedom, 2.093 with 19, 12.706 with 1.
        #expect(abs(StudentT.twoSidedTail(2.776_445, degreesOfFreedom: 4) - 0.05) < 1e-6)
        #expect(abs(StudentT.twoSidedTail(2.093_024, degreesOfFreedom: 19) - 0.05) < 1e-6)
        #expect(abs(StudentT.twoSidedTail(12.706_205, degreesOfFreedom: 1) - 0.05) < 1e-6)
        #expect(abs(StudentT.twoSidedTail(0, degreesOfFreedom: 7) - 1) < 1e-12)
        #expect(abs(Bootstrap.expectedCoverage(sampleSize: 20, confidence: 0.95) - 0.929) < 0.002)
        #expect(abs(Bootstrap.expectedCoverage(sampleSize: 3, confidence: 0.95) - 0.75) < 0.01)
        #expect(Bootstrap.expectedCoverage(sampleSize: 10, confidence: 0.95) > 0.9)
    }

    /// For the mean of n normal values, a bootstrap interval has about the width of z·s·√((n−1)/n)/√n
    /// (the resampled means' spread uses the plug-in variance), so its coverage is about
    /// P(|T(n−1)| < z·√((n−1)/n)): 0.929 for n = 20. Over 400 seeded samples the share that cover the
    /// true mean has a standard error of √(0.93·0.07/400) = 0.013; the bounds are four of them around
    /// 0.929 and 0.95.
    @Test("a normal sample's 95% interval covers the true mean in about 95% of seeded trials (0.929 expected at n = 20)")
    func coverage() {
        var generator = SeededGenerator(seed: 42)
        let trials = 400
        var covered = 0
        for trial in 0..<trials {
            let sample = Self.normalSample(20, mean: 10, sd: 2, using: &generator)
            let interval = Bootstrap(resamples: 1_000, seed: UInt64(trial)).meanInterval(sample)!
            if interval.contains(10) { covered += 1 }
        }
        let share = Double(covered) / Double(trials)
        #expect(share > 0.929 - 4 * 0.013 && share < 0.95 + 4 * 0.013, "covered \(covered) of \(trials)")
    }

    @Test("a large sample's interval has the width the normal theory gives and holds the sample mean")
    func width() {
        var generator = SeededGenerator(seed: 7)
        let sample = Self.normalSample(400, mean: 5, sd: 1, using: &generator)
        let interval = Bootstrap(resamples: 4_000).meanInterval(sample)!
        let mean = sample.reduce(0, +) / 400
        let sd = (sample.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 399).squareRoot()
        let expected = 2 * 1.96 * sd / 20
        #expect(interval.mean == mean && interval.low < mean && mean < interval.high)
        // The bootstrap's own noise at 4,000 resamples is a few percent of the width.
        #expect(abs((interval.high - interval.low) / expected - 1) < 0.08, "\(interval.high - interval.low) against \(expected)")
    }

    @Test("a skewed sample's interval leans as the sample does (BCa moves it right of the percentile one)")
    func skewed() {
        // Exponential values: the mean's sampling distribution is skewed right, so an exact interval
        // reaches further above the mean than below it.
        var generator = SeededGenerator(seed: 3)
        let sample = (0..<25).map { _ in -log(1 - generator.unitInterval()) }
        let interval = Bootstrap().meanInterval(sample)!
        #expect(interval.high - interval.mean > interval.mean - interval.low)
    }

    @Test("the same values and seed give the same interval; one value gives none; equal values give a point")
    func edges() {
        let values = [12.31, 15.07, 11.52, 14.93, 13.3, 12.77, 16.41, 10.86]
        #expect(Bootstrap().meanInterval(values) == Bootstrap().meanInterval(values))
        #expect(Bootstrap(seed: 1).meanInterval(values) != Bootstrap(seed: 2).meanInterval(values))
        #expect(Bootstrap().meanInterval([3]) == nil && Bootstrap().meanInterval([]) == nil)
        let point = Bootstrap().meanInterval([4, 4, 4])!
        #expect(point.low == 4 && point.high == 4 && point.mean == 4)
    }

    @Test("pairing repeat by repeat finds a difference that the two means' intervals hide")
    func paired() {
        // Repeats vary a lot from one to the next (the machine), the two algorithms by 1 in each.
        var generator = SeededGenerator(seed: 11)
        var a: [Int: Double] = [:]
        var b: [Int: Double] = [:]
        for repeatIndex in 0..<6 {
            let shared = 100 + 20 * (generator.unitInterval() - 0.5)
            a[repeatIndex] = shared + 1 + 0.1 * (generator.unitInterval() - 0.5)
            b[repeatIndex] = shared
        }
        let bootstrap = Bootstrap()
        let difference = bootstrap.pairedDifference(a, b)!
        #expect(difference.low > 0.9 && difference.high < 1.1 && difference.sampleSize == 6)
        let ia = bootstrap.meanInterval(Array(a.values).sorted())!
        let ib = bootstrap.meanInterval(Array(b.values).sorted())!
        #expect(ia.low < ib.high, "the unpaired intervals overlap")
        // Only the repeats both have are paired.
        #expect(bootstrap.pairedDifference([0: 1, 1: 2, 2: 3], [1: 1, 2: 1, 5: 9])?.sampleSize == 2)
    }
}
