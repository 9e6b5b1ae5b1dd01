/// The power of d choices: draw d distinct eligible backends at random and take the least loaded by a
/// ``LoadSignal``; the shape of ``PowerOfTwoChoices`` and ``PeakEWMA``.
///
/// Mitzenmacher ("The Power of Two Choices in Randomized Load Balancing", 2001) and Azar, Broder,
/// Karlin and Upfal (1999): placing m balls in n bins by the less loaded of d ≥ 2 random bins leaves
/// the fullest bin at m/n + ln ln n / ln d + O(1), against m/n + Θ(√((m/n)·ln n)) for one random bin.
/// The draws make it O(d) per pick and, unlike a full scan, keep many independent pickers (one per
/// event loop) from all choosing the same momentarily idle backend. Ties go to the first drawn, which
/// is itself random.
public struct PowerOfChoices<Signal: LoadSignal>: Picker {
    public let algorithm: Algorithm
    private let signal: Signal
    private let draws: Int
    private var backends: [Backend] = []
    private var generator: SeededGenerator
    private var drawn: [Int]

    /// A d-choices picker for `algorithm`, comparing `signal`; `draws` is d, at least 1.
    public init(algorithm: Algorithm, signal: Signal, draws: Int = 2, seed: UInt64 = 0) {
        precondition(draws >= 1, "PowerOfChoices needs at least one draw")
        self.algorithm = algorithm
        self.signal = signal
        self.draws = draws
        self.generator = SeededGenerator(seed: seed)
        self.drawn = []
        self.drawn.reserveCapacity(draws)
    }

    public mutating func rebuild(_ backends: [Backend]) {
        self.backends = backends
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        let count = self.backends.count
        guard count > 0 else { return nil }
        self.drawn.removeAll(keepingCapacity: true)
        var best = -1
        var bestLoad: Signal.Metric?
        // Rejection sampling of distinct eligible backends, with a bounded number of attempts; when
        // eligible backends are too few to find that way, a scan takes over below.
        var attempts = 4 * self.draws
        while self.drawn.count < self.draws, attempts > 0 {
            attempts -= 1
            let index = self.generator.index(below: count)
            guard self.backends[index].isEligible, !self.drawn.contains(index) else { continue }
            self.drawn.append(index)
            let load = self.signal.load(of: self.backends[index], now: request.now)
            if bestLoad.map({ load < $0 }) ?? true {
                (best, bestLoad) = (index, load)
            }
        }
        if self.drawn.count == self.draws {
            return best
        }
        return self.pickByScan(now: request.now)
    }

    /// Few eligible backends: draw among all of them by a full scan (random order via reservoir).
    private mutating func pickByScan(now: Instant) -> Int? {
        var eligible: [Int] = []
        for index in self.backends.indices where self.backends[index].isEligible {
            eligible.append(index)
        }
        guard !eligible.isEmpty else { return nil }
        eligible.shuffle(using: &self.generator)
        var best = -1
        var bestLoad: Signal.Metric?
        for index in eligible.prefix(self.draws) {
            let load = self.signal.load(of: self.backends[index], now: now)
            if bestLoad.map({ load < $0 }) ?? true {
                (best, bestLoad) = (index, load)
            }
        }
        return best
    }

    public mutating func requestFinished(on state: BackendState, latency: Duration, now: Instant) {
        self.signal.observe(state, latency: latency, now: now)
    }
}
