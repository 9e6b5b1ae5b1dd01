import LBCore

/// A set of backends and one picker over them, as the tests drive it: picks, request starts and
/// finishes, health changes, and rebuilds.
struct Cluster {
    var backends: [Backend]
    var picker: any Picker

    init(_ algorithm: Algorithm, count: Int, weights: [Double]? = nil, parameters: PickerParameters = PickerParameters()) throws {
        self.backends = (0..<count).map { index in
            Backend(state: BackendState(name: "b\(index)"), weight: weights?[index] ?? 1)
        }
        self.picker = try algorithm.makePicker(parameters)
        self.picker.rebuild(self.backends)
    }

    init(picker: any Picker, weights: [Double]) {
        self.backends = weights.indices.map { Backend(state: BackendState(name: "b\($0)"), weight: weights[$0]) }
        self.picker = picker
        self.picker.rebuild(self.backends)
    }

    /// Picks for `request`; does not count the request as started.
    mutating func pick(_ request: PickRequest = PickRequest(now: .zero)) -> Int? {
        self.picker.pick(request)
    }

    /// Picks and counts the request in flight on the chosen backend.
    mutating func start(_ request: PickRequest = PickRequest(now: .zero)) -> Int? {
        guard let index = self.picker.pick(request) else { return nil }
        self.backends[index].state.requestStarted()
        return index
    }

    mutating func finish(_ index: Int, latency: Duration = .milliseconds(1), now: Instant = .zero) {
        let state = self.backends[index].state
        state.requestFinished()
        self.picker.requestFinished(on: state, latency: latency, now: now)
    }

    mutating func rebuild() {
        self.picker.rebuild(self.backends)
    }

    /// How many of `requests` picks each backend gets, with keys from `key(i)`, nothing started.
    mutating func counts(_ requests: Int, key: (Int) -> UInt64? = { _ in nil }) -> [Int] {
        var counts = Array(repeating: 0, count: self.backends.count)
        for i in 0..<requests {
            let k = key(i)
            if let index = self.pick(PickRequest(now: .zero, clientKey: k, hashKey: k)) {
                counts[index] += 1
            }
        }
        return counts
    }

    var names: [String] { self.backends.map(\.name) }
}

/// Keys 0..<count spread over 64 bits, as hashed request attributes are.
func key(_ i: Int) -> UInt64 {
    StableHash.hash(UInt64(i))
}

extension Array where Element == Int {
    var sum: Int { self.reduce(0, +) }
}
