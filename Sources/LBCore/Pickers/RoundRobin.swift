/// Strict rotation over the eligible backends (`round-robin`; HAProxy's `roundrobin`/`static-rr`,
/// nginx's default).
///
/// Each pick starts where the previous one stopped and takes the next eligible backend, so with n
/// eligible backends every window of n consecutive picks visits each exactly once. Weights are
/// ignored except that a weight of zero takes a backend out of rotation. O(1) per pick while most
/// backends are eligible; O(n) in the worst case, when it must skip over many ineligible ones.
public struct RoundRobin: Picker {
    public var algorithm: Algorithm { .roundRobin }

    private var backends: [Backend] = []
    /// The index the next pick examines first.
    private var position: Int

    /// A round-robin picker. The seed chooses where the rotation starts, so that pickers on different
    /// event loops do not all send their first request to the same backend.
    public init(seed: UInt64 = 0) {
        var generator = SeededGenerator(seed: seed)
        self.position = Int(truncatingIfNeeded: generator.next() >> 33)
    }

    public mutating func rebuild(_ backends: [Backend]) {
        // Keep pointing at the same backend when it is still there, so a rebuild does not restart
        // or skip part of the rotation.
        let nextName: String? =
            self.backends.isEmpty ? nil : self.backends[self.position % self.backends.count].name
        self.backends = backends
        if let nextName, let index = backends.firstIndex(where: { $0.name == nextName }) {
            self.position = index
        } else {
            self.position = backends.isEmpty ? 0 : self.position % backends.count
        }
    }

    public mutating func pick(_ request: PickRequest) -> Int? {
        let count = self.backends.count
        guard count > 0 else { return nil }
        var candidate = self.position % count
        for _ in 0..<count {
            let next = candidate + 1 == count ? 0 : candidate + 1
            if self.backends[candidate].isEligible {
                self.position = next
                return candidate
            }
            candidate = next
        }
        return nil
    }
}
