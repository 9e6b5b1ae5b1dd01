public import LBCore

/// What a synthetic backend does per request, changeable while it runs through its control endpoint
/// (the fault timeline of `lbctl run` uses that to slow a backend, make it fail, or fail its checks).
public struct BackendSettings: Sendable, Hashable {
    /// How long a request takes after its CPU work, sampled per request.
    public var latency: LatencyModel
    /// CPU burnt per request (a busy loop on a worker thread), so that CPU limits matter.
    public var cpuWork: Duration
    /// The share of requests answered 500, between 0 and 1.
    public var errorRate: Double
    /// Whether the health path answers 200 (else 503).
    public var healthy: Bool

    /// Settings with the given behaviour.
    public init(latency: LatencyModel = .fixed(.zero), cpuWork: Duration = .zero, errorRate: Double = 0, healthy: Bool = true) {
        self.latency = latency
        self.cpuWork = cpuWork
        self.errorRate = errorRate
        self.healthy = healthy
    }

    /// Checks the values a user gave.
    public func validate() throws(BackendSettingsError) {
        guard (0...1).contains(self.errorRate) else {
            throw BackendSettingsError(field: "errors", problem: "must be between 0 and 1, got \(self.errorRate)")
        }
        guard self.cpuWork >= .zero else {
            throw BackendSettingsError(field: "cpu", problem: "must not be negative")
        }
    }

    /// A change sent to the control endpoint: the fields present replace the current ones.
    ///
    /// JSON: `{"latency": "lognormal(5ms,50ms)", "cpu": "1ms", "errors": 0.1, "healthy": false}`.
    public struct Change: Sendable, Hashable, Codable {
        /// A latency model as text.
        public var latency: String?
        /// CPU work per request as a Go duration.
        public var cpu: String?
        /// The error share.
        public var errors: Double?
        /// Health check answers.
        public var healthy: Bool?

        /// A change of the given fields.
        public init(latency: String? = nil, cpu: String? = nil, errors: Double? = nil, healthy: Bool? = nil) {
            self.latency = latency
            self.cpu = cpu
            self.errors = errors
            self.healthy = healthy
        }
    }

    /// These settings with `change` applied, validated.
    public func applying(_ change: Change) throws(BackendSettingsError) -> BackendSettings {
        var next = self
        if let latency = change.latency {
            do {
                next.latency = try LatencyModel(parsing: latency)
            } catch {
                throw BackendSettingsError(field: "latency", problem: "\(error)")
            }
        }
        if let cpu = change.cpu {
            do {
                next.cpuWork = try GoDuration.parse(cpu)
            } catch {
                throw BackendSettingsError(field: "cpu", problem: "\(error)")
            }
        }
        if let errors = change.errors { next.errorRate = errors }
        if let healthy = change.healthy { next.healthy = healthy }
        try next.validate()
        return next
    }
}

/// A setting out of range: names the field and says what was expected.
public struct BackendSettingsError: Error, Hashable, CustomStringConvertible {
    /// The field, as the flag and the control JSON spell it.
    public let field: String
    /// What is wrong.
    public let problem: String

    public var description: String { "\(self.field): \(self.problem)" }
}
