/// One backend as a picker sees it in a snapshot: its identity, its weight, and its live state.
///
/// A snapshot (`[Backend]`) is handed to ``Picker/rebuild(_:)`` whenever membership or weights change;
/// what changes per request (availability, in-flight requests, latency, resource use) is read from
/// ``state`` at pick time, so a snapshot stays valid while health and load move underneath it.
public struct Backend: Sendable {
    /// The live state shared by every picker that routes to this backend.
    public let state: BackendState
    /// The effective weight: the configured weight, reduced while slow start ramps it up.
    /// A weight of zero (or less) takes the backend out of rotation without removing it.
    public var weight: Double
    /// ``StableHash`` of the backend's name, where hash-based pickers place it.
    public let nameHash: UInt64

    /// The backend's name, its identity across snapshots.
    public var name: String { self.state.name }

    /// A backend with the given live state and effective weight.
    public init(state: BackendState, weight: Double = 1) {
        self.state = state
        self.weight = weight
        self.nameHash = StableHash.hash(state.name)
    }

    /// Whether a new request may go here now: available and with a positive weight.
    public var isEligible: Bool {
        self.weight > 0 && self.state.isAvailable
    }
}
