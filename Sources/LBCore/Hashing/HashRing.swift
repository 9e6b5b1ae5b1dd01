/// A ketama-style consistent-hash ring: each backend owns points on a 64-bit circle in proportion to
/// its weight, and a key belongs to the first point at or after its hash, going clockwise.
///
/// Removing a backend moves only the keys on its own points (to the next owner clockwise); adding one
/// takes keys only for its new points. With v points per backend the share of the circle a backend
/// owns has a relative spread of about 1/√v (160 points: about 8%).
struct HashRing {
    /// Point positions, sorted ascending.
    private(set) var positions: [UInt64] = []
    /// The snapshot index owning each point.
    private(set) var owners: [Int32] = []

    /// Places `pointsPerUnitWeight` points per unit of weight relative to the mean positive weight
    /// (at least one per backend of positive weight, none for weight zero).
    init(backends: [Backend], pointsPerUnitWeight: Int) {
        let positive = backends.filter { $0.weight > 0 }
        guard !positive.isEmpty else { return }
        let meanWeight = positive.reduce(0) { $0 + $1.weight } / Double(positive.count)
        var points: [(position: UInt64, owner: Int32)] = []
        for (index, backend) in backends.enumerated() where backend.weight > 0 {
            let count = max(1, Int((Double(pointsPerUnitWeight) * backend.weight / meanWeight).rounded()))
            for replica in 0..<count {
                points.append((StableHash.combine(backend.nameHash, UInt64(replica)), Int32(index)))
            }
        }
        // Ties between positions (astronomically rare) are broken by owner so the ring is deterministic.
        points.sort { $0.position == $1.position ? $0.owner < $1.owner : $0.position < $1.position }
        self.positions = points.map(\.position)
        self.owners = points.map(\.owner)
    }

    var isEmpty: Bool { self.positions.isEmpty }
    var count: Int { self.positions.count }

    /// The index of the first point at or after `key`, wrapping to 0 past the last.
    func firstPoint(atOrAfter key: UInt64) -> Int {
        var low = 0
        var high = self.positions.count
        while low < high {
            let middle = (low + high) / 2
            if self.positions[middle] < key {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low == self.positions.count ? 0 : low
    }
}
