/// Chooses the eligible backend with the lowest ``LoadSignal`` metric, breaking ties uniformly at
/// random; the shape of ``LeastConnections`` and ``LeastResources``.
///
/// The scan reads every eligible backend's live state, so it sees the true global load even when
/// other event loops are routing at the same time. O(n) per pick, like nginx's `least_conn`.
public struct LeastLoaded<Signal: LoadSignal>: Picker {
    public let algorithm: Algorithm
    private let signal: Signal
    private var backends: [Backend] = []
    private var generator: SeededGenerator

    /// A full-scan picker for `algorithm`, comparing `signal`.
    public init(algorithm: Algorithm, signal: Signal, seed: UInt64 = 0) {
        self.algorithm = algorithm
        self.signal = signal
        self.generator = SeededGenerator(seed: seed)
    }

    public mutating func rebuild(_ backends: [Backend]) {
        self.backends = backends
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        var best = -1
        var bestLoad: Signal.Metric?
        var ties = 0
        for index in self.backends.indices {
            let backend = self.backends[index]
            guard backend.isEligible else { continue }
            let load = self.signal.load(of: backend, now: request.now)
            guard let current = bestLoad else {
                (best, bestLoad, ties) = (index, load, 1)
                continue
            }
            if load < current {
                (best, bestLoad, ties) = (index, load, 1)
            } else if load == current {
                // Reservoir sampling over the tied backends: each ends up chosen with probability 1/ties.
                ties += 1
                if self.generator.index(below: ties) == 0 {
                    best = index
                }
            }
        }
        return best >= 0 ? best : nil
    }

    public mutating func requestFinished(on state: BackendState, latency: Duration, now: Instant) {
        self.signal.observe(state, latency: latency, now: now)
    }
}
