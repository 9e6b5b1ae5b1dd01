import LBCore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Latency models")
struct LatencyModelTests {
    static let sampleCount = 200_000

    func samples(_ model: LatencyModel, seed: UInt64 = 17) -> [Double] {
        var generator = SeededGenerator(seed: seed)
        return (0..<Self.sampleCount).map { _ in Double(model.sample(using: &generator).nanoseconds) / 1e6 }
    }

    func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }

    func quantile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        return sorted[Int(q * Double(sorted.count - 1))]
    }

    @Test(
        "reads every model as written and prints it back",
        arguments: [
            ("5ms", LatencyModel.fixed(.milliseconds(5))),
            ("fixed(5ms)", .fixed(.milliseconds(5))),
            ("uniform(1ms, 10ms)", .uniform(min: .milliseconds(1), max: .milliseconds(10))),
            ("exponential(5ms)", .exponential(mean: .milliseconds(5))),
            ("exp(2.5ms)", .exponential(mean: .microseconds(2_500))),
            ("lognormal(5ms,50ms)", .lognormal(median: .milliseconds(5), p99: .milliseconds(50))),
            ("0s", .fixed(.zero)),
        ]
    )
    func parses(text: String, model: LatencyModel) throws {
        let parsed = try LatencyModel(parsing: text)
        #expect(parsed == model)
        #expect(try LatencyModel(parsing: parsed.description) == model)
    }

    @Test(
        "refuses malformed models, naming the problem",
        arguments: [
            ("5", "needs a unit"),
            ("uniform(10ms,1ms)", "minimum above its maximum"),
            ("uniform(1ms)", "takes a minimum and a maximum"),
            ("lognormal(5ms,5ms)", "99th percentile above its median"),
            ("exponential(0s)", "positive"),
            ("gamma(1ms)", "not a latency model"),
            ("uniform(1ms,2ms", "closing parenthesis"),
            ("-5ms", "non-negative"),
        ]
    )
    func refuses(text: String, problem: String) {
        #expect {
            try LatencyModel(parsing: text)
        } throws: { error in
            "\(error)".contains(problem)
        }
    }

    // With 200,000 samples the standard error of a mean is σ/√n ≈ σ/447, so bounds of a few
    // percent are tens of standard errors wide for these fixed seeds, and still catch a wrong formula.

    @Test("fixed is always the value")
    func fixed() {
        #expect(Set(samples(.fixed(.milliseconds(5)))) == [5])
    }

    @Test("uniform stays within its bounds with mean (a+b)/2")
    func uniform() {
        let values = samples(.uniform(min: .milliseconds(2), max: .milliseconds(10)))
        #expect(values.min()! >= 2 && values.max()! <= 10)
        // σ = 8/√12 ≈ 2.31; standard error ≈ 0.005.
        #expect(abs(mean(values) - 6) < 0.03)
        #expect(abs(quantile(values, 0.25) - 4) < 0.05)
    }

    @Test("exponential has its mean, and its median at mean·ln 2")
    func exponential() {
        let values = samples(.exponential(mean: .milliseconds(4)))
        #expect(values.min()! >= 0)
        // σ = mean = 4; standard error ≈ 0.009.
        #expect(abs(mean(values) - 4) < 0.05)
        #expect(abs(quantile(values, 0.5) - 4 * log(2.0)) < 0.05)
        #expect(abs(quantile(values, 0.99) - 4 * log(100.0)) < 0.4)
    }

    @Test("lognormal has the median and 99th percentile it was given")
    func lognormal() {
        let model = LatencyModel.lognormal(median: .milliseconds(5), p99: .milliseconds(50))
        let values = samples(model)
        // The sample quantile's relative error at n = 200,000 is well under 1% at the median and a few
        // percent at p99.
        #expect(abs(quantile(values, 0.5) / 5 - 1) < 0.02)
        #expect(abs(quantile(values, 0.99) / 50 - 1) < 0.05)
        #expect(abs(mean(values) / (Double(model.mean.nanoseconds) / 1e6) - 1) < 0.03)
    }

    @Test("the same seed gives the same samples")
    func reproducible() {
        let model = LatencyModel.exponential(mean: .milliseconds(3))
        #expect(samples(model, seed: 9) == samples(model, seed: 9))
        #expect(samples(model, seed: 9) != samples(model, seed: 10))
    }
}
