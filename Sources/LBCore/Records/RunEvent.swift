/// Something that happened during a run: a row of the `events` table (DESIGN §5).
///
/// Faults the harness applied (`kill`, `resume`, `slow`), what the proxy observed (`health_down`,
/// `health_up`, `ejected`), and phases of the run (`phase` with subject `warmup`, `measure`, `drain`).
public struct RunEvent: Sendable, Hashable {
    /// When it happened, in microseconds since the run's start.
    public var tMicros: Int64
    /// What kind of event, e.g. `kill` or `health_down`.
    public var kind: String
    /// What it happened to: a backend's name, `proxy`, `loadgen`.
    public var subject: String
    /// Details as a JSON object, when there are any.
    public var detailJSON: String?

    /// An event of `kind` on `subject` at `tMicros`.
    public init(tMicros: Int64, kind: String, subject: String, detailJSON: String? = nil) {
        self.tMicros = tMicros
        self.kind = kind
        self.subject = subject
        self.detailJSON = detailJSON
    }
}

/// A backend known to a run: a row of the `backends` table (DESIGN §5). Request rows refer to it by
/// ``id``.
public struct BackendRecord: Sendable, Hashable {
    /// The backend's number in the run.
    public var id: Int
    /// Its name, as `X-LBLab-Backend` carries it.
    public var name: String
    /// Its address, when known (`127.0.0.1:9001`).
    public var address: String?
    /// Its configured weight.
    public var weight: Double
    /// Its specification (latency model, limits) as JSON, when known.
    public var specJSON: String?

    /// A backend record with every field given.
    public init(id: Int, name: String, address: String? = nil, weight: Double = 1, specJSON: String? = nil) {
        self.id = id
        self.name = name
        self.address = address
        self.weight = weight
        self.specJSON = specJSON
    }
}
