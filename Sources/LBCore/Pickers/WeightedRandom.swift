/// Weight-proportional random choice (`weighted-random`).
///
/// Backend i is chosen with probability wᵢ / Σ w over the eligible backends. The draw uses Walker's
/// alias method (in Vose's numerically stable construction), built once per snapshot, so a pick costs
/// one random index and one coin flip whatever the number of backends. A draw that lands on an
/// ineligible backend is redrawn a few times, which keeps the proportions among the eligible ones
/// exact; after that a weighted scan decides.
public struct WeightedRandom: Picker {
    public var algorithm: Algorithm { .weightedRandom }

    private var backends: [Backend] = []
    private var table = AliasTable(weights: [])
    private var generator: SeededGenerator

    /// A weighted random picker whose choices are determined by `seed`.
    public init(seed: UInt64 = 0) {
        self.generator = SeededGenerator(seed: seed)
    }

    public mutating func rebuild(_ backends: [Backend]) {
        self.backends = backends
        self.table = AliasTable(weights: backends.map { max(0, $0.weight) })
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        guard !self.table.isEmpty else { return nil }
        for _ in 0..<4 {
            let index = self.table.draw(using: &self.generator)
            if self.backends[index].isEligible {
                return index
            }
        }
        return EligibleScan.weighted(self.backends, using: &self.generator)
    }
}

/// Walker's alias table: O(n) to build, O(1) to draw an index with probability proportional to its
/// weight (Vose, "A linear algorithm for generating random numbers with a given distribution", 1991).
struct AliasTable {
    private var probability: [Double] = []
    private var alias: [Int] = []

    var isEmpty: Bool { self.probability.isEmpty }

    /// Builds the table; empty when no weight is positive.
    init(weights: [Double]) {
        let total = weights.reduce(0, +)
        guard total > 0 else { return }
        let count = weights.count
        var scaled = weights.map { $0 * Double(count) / total }
        self.probability = Array(repeating: 1, count: count)
        self.alias = Array(0..<count)
        var small: [Int] = []
        var large: [Int] = []
        for (index, value) in scaled.enumerated() {
            if value < 1 { small.append(index) } else { large.append(index) }
        }
        while let less = small.popLast(), let more = large.last {
            self.probability[less] = scaled[less]
            self.alias[less] = more
            scaled[more] = (scaled[more] + scaled[less]) - 1
            if scaled[more] < 1 {
                large.removeLast()
                small.append(more)
            }
        }
        // What remains has probability 1 up to rounding error.
        for index in large + small {
            self.probability[index] = 1
        }
    }

    func draw(using generator: inout SeededGenerator) -> Int {
        let column = generator.index(below: self.probability.count)
        return generator.unitInterval() < self.probability[column] ? column : self.alias[column]
    }
}
