/// Smooth weighted round robin (`weighted-round-robin`), the algorithm of nginx's upstream module.
///
/// Each backend carries a running credit. On every pick each eligible backend's credit grows by its
/// weight, the backend with the most credit is chosen (the first one on a tie), and the chosen one's
/// credit drops by the sum of the eligible weights. Over any whole cycle of W = Σ wᵢ picks (with
/// integral weights) backend i is chosen exactly wᵢ times, and its picks are spread out rather than
/// sent in a burst: weights 5, 1, 1 give `a a b a c a a`, where a plain weighted rotation would give
/// `a a a a a b c`.
///
/// O(n) per pick, like nginx: every eligible backend's credit is updated. Credits follow backends by
/// name across rebuilds.
public struct SmoothWeightedRoundRobin: Picker {
    public var algorithm: Algorithm { .weightedRoundRobin }

    private var backends: [Backend] = []
    private var credit: [Double] = []

    /// A smooth weighted round-robin picker. It draws no random numbers.
    public init() {}

    public mutating func rebuild(_ backends: [Backend]) {
        var previous: [String: Double] = [:]
        for (index, backend) in self.backends.enumerated() {
            previous[backend.name] = self.credit[index]
        }
        self.backends = backends
        self.credit = backends.map { previous[$0.name] ?? 0 }
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        var best = -1
        var bestCredit = -Double.infinity
        var total = 0.0
        self.credit.withUnsafeMutableBufferPointer { credit in
            for index in 0..<credit.count {
                let backend = self.backends[index]
                guard backend.isEligible else { continue }
                credit[index] += backend.weight
                total += backend.weight
                if credit[index] > bestCredit {
                    best = index
                    bestCredit = credit[index]
                }
            }
            if best >= 0 {
                credit[best] -= total
            }
        }
        return best >= 0 ? best : nil
    }
}
