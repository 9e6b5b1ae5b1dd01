import Foundation
import LBCore

/// Confidence intervals for the mean of a few repeats by the bias-corrected and accelerated (BCa)
/// bootstrap: Efron, "Better Bootstrap Confidence Intervals", JASA 82 (1987), and Efron and
/// Tibshirani, *An Introduction to the Bootstrap* (1993), chapter 14.
///
/// The sample is resampled with replacement ``resamples`` times from a generator seeded with
/// ``seed``, so the same values give the same interval. The interval's ends are percentiles of the
/// resampled means, moved by the bias correction `z0` (how far the resampled means sit to one side of
/// the sample's) and the acceleration `a` (the skew of the jackknife means); with `z0 = a = 0` it is
/// the plain percentile interval. A sample of one value has no interval: nothing can be told from it.
public struct Bootstrap: Sendable, Hashable {
    /// The method, as reports and verdicts name it.
    public static let method = "BCa bootstrap"
    /// The interval's coverage asked for (0.95: a 95% interval).
    public var confidence: Double
    /// Resamples drawn.
    public var resamples: Int
    /// The seed of the resampling.
    public var seed: UInt64

    public init(confidence: Double = 0.95, resamples: Int = 10_000, seed: UInt64 = 0x6C62_6C61_6200) {
        precondition(confidence > 0 && confidence < 1 && resamples >= 100)
        self.confidence = confidence
        self.resamples = resamples
        self.seed = seed
    }

    /// The interval of the mean of `values`, or `nil` for fewer than two values or any that is not
    /// finite (a reaction that never came).
    public func meanInterval(_ values: [Double]) -> ConfidenceInterval? {
        let n = values.count
        guard n >= 2, values.allSatisfy(\.isFinite) else { return nil }
        let sum = values.reduce(0, +)
        let mean = sum / Double(n)
        let interval = { (low: Double, high: Double) in
            ConfidenceInterval(mean: mean, low: low, high: high, confidence: self.confidence, sampleSize: n, resamples: self.resamples)
        }
        // Every value the same: every resample's mean is that value.
        guard values.contains(where: { $0 != values[0] }) else { return interval(mean, mean) }
        var generator = SeededGenerator(seed: self.seed)
        var means = [Double](repeating: 0, count: self.resamples)
        for resample in 0..<self.resamples {
            var total = 0.0
            for _ in 0..<n { total += values[Int.random(in: 0..<n, using: &generator)] }
            means[resample] = total / Double(n)
        }
        means.sort()
        // Bias correction: the share of resampled means below the sample's, ties counted half.
        let below = means.partitioningIndex(where: { $0 >= mean })
        let equal = means[below...].prefix { $0 == mean }.count
        let share = (Double(below) + Double(equal) / 2) / Double(self.resamples)
        let bound = 1 / (2 * Double(self.resamples))
        let z0 = Normal.quantile(min(max(share, bound), 1 - bound))
        // Acceleration from the jackknife: the means leaving out one value each.
        let jackknife = values.map { (sum - $0) / Double(n - 1) }
        let jackknifeMean = jackknife.reduce(0, +) / Double(n)
        let squares = jackknife.reduce(0) { $0 + ($1 - jackknifeMean) * ($1 - jackknifeMean) }
        let cubes = jackknife.reduce(0) { $0 + pow(jackknifeMean - $1, 3) }
        let a = squares > 0 ? cubes / (6 * pow(squares, 1.5)) : 0
        func adjusted(_ alpha: Double) -> Double {
            let z = z0 + Normal.quantile(alpha)
            return Normal.cdf(z0 + z / (1 - a * z))
        }
        let tail = (1 - self.confidence) / 2
        return interval(Self.percentile(means, adjusted(tail)), Self.percentile(means, adjusted(1 - tail)))
    }

    /// The interval of the mean difference `a[k] - b[k]` over the keys both have (repeat numbers): the
    /// paired comparison, in which what repeat `k` shares between the two (its arrivals, its keys, the
    /// machine's state) cancels out. `nil` with fewer than two pairs.
    public func pairedDifference<Key: Hashable>(_ a: [Key: Double], _ b: [Key: Double]) -> ConfidenceInterval? {
        self.meanInterval(a.compactMap { key, value in b[key].map { value - $0 } }.sorted())
    }

    /// About how often an interval of this method covers the true mean of `sampleSize` normal values:
    /// the resampled means spread as the plug-in standard deviation (divided by n, not n − 1) over √n,
    /// so the interval is about ±z·s·√((n−1)/n)/√n where the exact one is ±t(n−1)·s/√n; its coverage
    /// is P(|T(n−1)| < z·√((n−1)/n)): 0.75 for 3 values, 0.85 for 5, 0.90 for 10, 0.93 for 20.
    public static func expectedCoverage(sampleSize n: Int, confidence: Double) -> Double {
        guard n >= 2 else { return 0 }
        let z = Normal.quantile(1 - (1 - confidence) / 2)
        let bound = z * (Double(n - 1) / Double(n)).squareRoot()
        return 1 - StudentT.twoSidedTail(bound, degreesOfFreedom: Double(n - 1))
    }

    /// The value at `fraction` of sorted `values`, interpolated between the two nearest.
    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        let position = min(max(fraction, 0), 1) * Double(values.count - 1)
        let below = Int(position.rounded(.down))
        let above = min(below + 1, values.count - 1)
        return values[below] + (values[above] - values[below]) * (position - Double(below))
    }
}

/// A mean with its confidence interval.
public struct ConfidenceInterval: Sendable, Hashable {
    /// The sample's mean.
    public var mean: Double
    /// The interval's ends.
    public var low: Double
    public var high: Double
    /// Its coverage (0.95).
    public var confidence: Double
    /// Values the mean is of.
    public var sampleSize: Int
    /// Bootstrap resamples behind it.
    public var resamples: Int

    public init(mean: Double, low: Double, high: Double, confidence: Double, sampleSize: Int, resamples: Int) {
        self.mean = mean
        self.low = low
        self.high = high
        self.confidence = confidence
        self.sampleSize = sampleSize
        self.resamples = resamples
    }

    /// Whether `value` is inside the interval (its ends included).
    public func contains(_ value: Double) -> Bool {
        self.low <= value && value <= self.high
    }
}

/// The standard normal distribution's CDF and quantile function.
public enum Normal {
    /// P(Z ≤ z).
    public static func cdf(_ z: Double) -> Double {
        0.5 * erfc(-z / 2.0.squareRoot())
    }

    /// The z with P(Z ≤ z) = p, for p in (0, 1): Acklam's rational approximation (relative error
    /// below 1.2·10⁻⁹), refined by one step of Halley's method on ``cdf(_:)``.
    public static func quantile(_ p: Double) -> Double {
        precondition(p > 0 && p < 1, "a normal quantile needs p in (0, 1), got \(p)")
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        var x: Double
        if p < low {
            let q = (-2 * log(p)).squareRoot()
            x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        } else if p <= 1 - low {
            let q = p - 0.5
            let r = q * q
            x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        } else {
            let q = (-2 * log(1 - p)).squareRoot()
            x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        let e = Self.cdf(x) - p
        let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
        x -= u / (1 + x * u / 2)
        return x
    }
}

/// Student's t distribution.
public enum StudentT {
    /// P(|T| ≥ t) with `ν` degrees of freedom: the regularized incomplete beta I(ν/(ν+t²); ν/2, 1/2).
    public static func twoSidedTail(_ t: Double, degreesOfFreedom ν: Double) -> Double {
        IncompleteBeta.regularized(x: ν / (ν + t * t), a: ν / 2, b: 0.5)
    }
}

/// The regularized incomplete beta function by its continued fraction (Lentz's method), as in Press et
/// al., *Numerical Recipes*, 3rd ed., §6.4.
enum IncompleteBeta {
    static func regularized(x: Double, a: Double, b: Double) -> Double {
        guard x > 0 else { return 0 }
        guard x < 1 else { return 1 }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let front = exp(logGammas + logPowers)
        // The fraction converges fast below the mean (a + 1)/(a + b + 2); above it, by symmetry.
        if x < (a + 1) / (a + b + 2) { return front * Self.fraction(x: x, a: a, b: b) / a }
        return 1 - front * Self.fraction(x: 1 - x, a: b, b: a) / b
    }

    private static func fraction(x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...300 {
            let m = Double(m)
            let even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + even * d
            if abs(d) < tiny { d = tiny }
            c = 1 + even / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            let odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + odd * d
            if abs(d) < tiny { d = tiny }
            c = 1 + odd / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let step = d * c
            h *= step
            if abs(step - 1) < 1e-15 { break }
        }
        return h
    }
}

extension Array where Element == Double {
    /// The first index whose element satisfies `belongs`, in an array where those that do all follow
    /// those that do not.
    fileprivate func partitioningIndex(where belongs: (Double) -> Bool) -> Int {
        var low = 0
        var high = self.count
        while low < high {
            let middle = (low + high) / 2
            if belongs(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
