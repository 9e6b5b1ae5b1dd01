/// A fast, seedable pseudo-random generator: xoshiro256** (Blackman and Vigna, 2018), seeded through
/// SplitMix64 as its authors recommend.
///
/// Every picker and policy that draws random numbers owns one of these, so a seed reproduces a run
/// exactly. It is not cryptographically secure and is not meant to be.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    /// Creates a generator whose whole output is determined by `seed`.
    public init(seed: UInt64) {
        var splitMix = SplitMix64(state: seed)
        self.s0 = splitMix.next()
        self.s1 = splitMix.next()
        self.s2 = splitMix.next()
        self.s3 = splitMix.next()
    }

    /// Derives an independent generator for a sub-component (an event loop, a client) from this seed,
    /// so that adding a component does not shift the random stream of the others.
    public static func derived(seed: UInt64, stream: UInt64) -> SeededGenerator {
        SeededGenerator(seed: StableHash.combine(seed, stream))
    }

    @inlinable
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 &- k))
    }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        let result = Self.rotl(self.s1 &* 5, 7) &* 9
        let t = self.s1 << 17
        self.s2 ^= self.s0
        self.s3 ^= self.s1
        self.s1 ^= self.s2
        self.s0 ^= self.s3
        self.s2 ^= t
        self.s3 = Self.rotl(self.s3, 45)
        return result
    }

    /// A uniform integer in `0..<bound` (Lemire's nearly divisionless method). `bound` must be positive.
    @inlinable
    public mutating func index(below bound: Int) -> Int {
        Int(truncatingIfNeeded: self.next(upperBound: UInt64(bound)))
    }

    /// A uniform double in `[0, 1)` with 53 bits of precision.
    @inlinable
    public mutating func unitInterval() -> Double {
        Double(self.next() >> 11) * 0x1.0p-53
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014), used only to expand a 64-bit seed into generator state.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
