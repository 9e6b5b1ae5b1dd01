#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Request keys for hash-based algorithms: key k of `count` drawn with probability ∝ 1/(k+1)^s.
///
/// s = 0 is uniform; s ≈ 1 is the classic Zipf law of web objects and cache keys, where a few hot keys
/// carry much of the traffic — the case consistent hashing with bounded load exists for. Sampling
/// inverts the cumulative distribution by binary search: O(log count) per key.
public struct ZipfKeys: Sendable {
    /// How many distinct keys there are.
    public let count: Int
    /// The exponent s.
    public let exponent: Double
    private let cumulative: [Double]

    /// Keys 0..<`count` with exponent `exponent` (≥ 0).
    public init(count: Int, exponent: Double) {
        precondition(count >= 1, "ZipfKeys needs at least one key")
        precondition(exponent >= 0 && exponent.isFinite, "a Zipf exponent must be a non-negative number")
        self.count = count
        self.exponent = exponent
        var running = 0.0
        var cumulative = [Double]()
        cumulative.reserveCapacity(count)
        for k in 0..<count {
            running += 1 / pow(Double(k + 1), exponent)
            cumulative.append(running)
        }
        self.cumulative = cumulative.map { $0 / running }
    }

    /// The probability of key `k`.
    public func probability(of k: Int) -> Double {
        k == 0 ? self.cumulative[0] : self.cumulative[k] - self.cumulative[k - 1]
    }

    /// One key.
    public func next(using generator: inout SeededGenerator) -> Int {
        let u = generator.unitInterval()
        var low = 0
        var high = self.count - 1
        while low < high {
            let middle = (low + high) / 2
            if self.cumulative[middle] > u { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
