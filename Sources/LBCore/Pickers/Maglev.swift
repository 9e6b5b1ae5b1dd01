/// Maglev hashing (`maglev`; Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
/// Balancer", NSDI 2016; Envoy's `MAGLEV`).
///
/// A lookup table of M slots (M prime) is filled by letting each backend claim, in turn, the next free
/// slot of its own permutation of 0..<M (offset and skip from two hashes of its name). Every backend
/// ends up with ⌊M/n⌋ or ⌈M/n⌉ slots — a near-perfect balance that a ring only approaches — and a key
/// is served by the owner of slot `hash(key) mod M`: O(1) per pick. When the backend set changes,
/// most slots keep their owner (the paper measures the disruption; the tests bound it).
///
/// M must be at least 100·n for each backend's share to stay within 1% of 1/n; a configured size below
/// that is raised to the next prime ≥ 100·n at rebuild. Weights are honoured as Envoy does: a backend
/// of half the largest weight claims a slot every second turn. A slot whose owner is not eligible
/// falls through to the next slots' owners, which spreads its keys evenly over the others and moves
/// no other key.
public struct Maglev: Picker {
    public var algorithm: Algorithm { .maglev }
    private let configuredTableSize: Int
    private var backends: [Backend] = []
    private var table: [Int32] = []
    private var generator: SeededGenerator

    /// A Maglev picker with a table of `tableSize` slots, which must be prime.
    public init(tableSize: Int = 65_537, seed: UInt64 = 0) {
        precondition(Primes.isPrime(tableSize), "Maglev table size \(tableSize) is not prime")
        self.configuredTableSize = tableSize
        self.generator = SeededGenerator(seed: seed)
    }

    /// The table size in use: the configured one, or the next prime ≥ 100·n when that is larger.
    public var tableSize: Int { self.table.count }

    /// How many slots each backend of the snapshot owns, by snapshot index.
    public var slotCounts: [Int] {
        var counts = Array(repeating: 0, count: self.backends.count)
        for owner in self.table where owner >= 0 {
            counts[Int(owner)] += 1
        }
        return counts
    }

    /// The owner of every slot, by snapshot index (-1 when no backend has a positive weight).
    public var slotOwners: [Int32] { self.table }

    public mutating func rebuild(_ backends: [Backend]) {
        self.backends = backends
        let participating = backends.indices.filter { backends[$0].weight > 0 }
        guard !participating.isEmpty else {
            self.table = []
            return
        }
        let size = max(self.configuredTableSize, Primes.smallestPrime(atLeast: 100 * participating.count))
        self.table = Self.populate(backends: backends, participating: participating, size: size)
    }

    /// The population algorithm of the paper (its Pseudocode 1), with Envoy's weighting.
    private static func populate(backends: [Backend], participating: [Int], size: Int) -> [Int32] {
        let modulus = UInt64(size)
        let maxWeight = participating.map { backends[$0].weight }.max() ?? 1
        var position = participating.map { StableHash.combine(backends[$0].nameHash, 0x6D61_676C_6576) % modulus }
        let skip = participating.map { StableHash.combine(backends[$0].nameHash, 0x736B_6970) % (modulus - 1) + 1 }
        let weight = participating.map { backends[$0].weight / maxWeight }
        var target = Array(repeating: 0.0, count: participating.count)
        var table = Array(repeating: Int32(-1), count: size)
        var filled = 0
        var turn = 0.0
        while true {
            for slot in participating.indices {
                // A backend of relative weight 1/k claims a slot every k-th turn.
                if turn * weight[slot] < target[slot] { continue }
                target[slot] += 1
                var candidate = position[slot]
                while table[Int(candidate)] >= 0 {
                    candidate = (candidate + skip[slot]) % modulus
                }
                table[Int(candidate)] = Int32(participating[slot])
                position[slot] = (candidate + skip[slot]) % modulus
                filled += 1
                if filled == size {
                    return table
                }
            }
            turn += 1
        }
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        let size = self.table.count
        guard size > 0 else { return nil }
        let key = request.hashKey ?? request.clientKey ?? self.generator.next()
        var slot = Int(key % UInt64(size))
        for _ in 0..<size {
            let owner = Int(self.table[slot])
            if self.backends[owner].isEligible {
                return owner
            }
            slot = slot + 1 == size ? 0 : slot + 1
        }
        return nil
    }
}

/// Prime numbers for hash-table sizes.
enum Primes {
    static func isPrime(_ n: Int) -> Bool {
        guard n >= 2 else { return false }
        if n < 4 { return true }
        if n % 2 == 0 || n % 3 == 0 { return false }
        var divisor = 5
        while divisor * divisor <= n {
            if n % divisor == 0 || n % (divisor + 2) == 0 { return false }
            divisor += 6
        }
        return true
    }

    static func smallestPrime(atLeast n: Int) -> Int {
        var candidate = max(2, n)
        while !self.isPrime(candidate) {
            candidate += 1
        }
        return candidate
    }
}
