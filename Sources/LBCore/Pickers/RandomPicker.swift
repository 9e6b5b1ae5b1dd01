/// Uniform random choice among the eligible backends (`random`).
///
/// Draws a backend uniformly and redraws while it is not eligible, up to a few times; after that it
/// chooses uniformly among the eligible ones it finds by a scan. Either way the choice is uniform over
/// the eligible backends. O(1) per pick while most backends are eligible.
///
/// Random placement is the baseline the load-aware algorithms are measured against: with m requests on
/// n backends the fullest holds about m/n + √(2·(m/n)·ln n) of them (Raab and Steger, 1998).
public struct RandomPicker: Picker {
    public var algorithm: Algorithm { .random }

    private var backends: [Backend] = []
    private var generator: SeededGenerator

    /// A random picker whose choices are determined by `seed`.
    public init(seed: UInt64 = 0) {
        self.generator = SeededGenerator(seed: seed)
    }

    public mutating func rebuild(_ backends: [Backend]) {
        self.backends = backends
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        let count = self.backends.count
        guard count > 0 else { return nil }
        for _ in 0..<4 {
            let index = self.generator.index(below: count)
            if self.backends[index].isEligible {
                return index
            }
        }
        return EligibleScan.uniform(self.backends, using: &self.generator)
    }
}

/// Slow paths shared by pickers whose fast path draws at random and may land on ineligible backends.
enum EligibleScan {
    /// A uniform choice among the eligible backends, by reservoir sampling in one pass.
    static func uniform(_ backends: [Backend], using generator: inout SeededGenerator) -> Int? {
        var chosen: Int?
        var seen = 0
        for index in backends.indices where backends[index].isEligible {
            seen += 1
            if generator.index(below: seen) == 0 {
                chosen = index
            }
        }
        return chosen
    }

    /// A weight-proportional choice among the eligible backends, by weighted reservoir sampling.
    static func weighted(_ backends: [Backend], using generator: inout SeededGenerator) -> Int? {
        var chosen: Int?
        var total = 0.0
        for index in backends.indices where backends[index].isEligible {
            total += backends[index].weight
            if generator.unitInterval() * total < backends[index].weight {
                chosen = index
            }
        }
        return chosen
    }
}
