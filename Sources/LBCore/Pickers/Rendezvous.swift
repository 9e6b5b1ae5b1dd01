#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Rendezvous or highest-random-weight hashing (`rendezvous`; Thaler and Ravishankar, 1998).
///
/// Every (key, backend) pair gets a pseudo-random score from a hash of both, and the key goes to the
/// eligible backend with the highest score. Removing a backend moves exactly the keys it held, each to
/// its second-highest backend, so a change of one in n backends remaps ~1/n of the keys; no ring or
/// table is built. Unequal weights use the logarithmic method (Schindelhauer and Schomaker, 2005):
/// score = w / −ln(u), u ∈ (0,1) the hash, which gives backend i a share wᵢ/W exactly. O(n) per pick.
///
/// The key is ``PickRequest/hashKey``, else the client key; requests with neither get a random key.
public struct Rendezvous: Picker {
    public var algorithm: Algorithm { .rendezvous }
    private var backends: [Backend] = []
    private var equalWeights = true
    private var generator: SeededGenerator

    /// A rendezvous picker; the seed only decides keys for requests that carry none.
    public init(seed: UInt64 = 0) {
        self.generator = SeededGenerator(seed: seed)
    }

    public mutating func rebuild(_ backends: [Backend]) {
        self.backends = backends
        let weights = Set(backends.lazy.filter { $0.weight > 0 }.map(\.weight))
        self.equalWeights = weights.count <= 1
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        let key = request.hashKey ?? request.clientKey ?? self.generator.next()
        var best = -1
        if self.equalWeights {
            // With one weight the logarithmic score is monotone in the hash: compare hashes directly.
            var bestScore: UInt64 = 0
            for index in self.backends.indices where self.backends[index].isEligible {
                let score = StableHash.combine(key, self.backends[index].nameHash)
                if best < 0 || score > bestScore {
                    (best, bestScore) = (index, score)
                }
            }
        } else {
            var bestScore = -Double.infinity
            for index in self.backends.indices where self.backends[index].isEligible {
                let hash = StableHash.combine(key, self.backends[index].nameHash)
                let unit = (Double(hash >> 11) + 0.5) * 0x1.0p-53
                let score = self.backends[index].weight / -log(unit)
                if score > bestScore {
                    (best, bestScore) = (index, score)
                }
            }
        }
        return best >= 0 ? best : nil
    }
}
