/// How a backend is actively checked (HAProxy's `inter`, `timeout check`, `rise`, `fall`).
public struct HealthCheckConfiguration: Sendable, Hashable, Codable {
    /// Time between the starts of two probes.
    public var interval: Duration
    /// How long a probe may take before it counts as failed.
    public var timeout: Duration
    /// Consecutive successful probes that bring a down backend up.
    public var rise: Int
    /// Consecutive failed probes that take an up backend down.
    public var fall: Int

    /// HAProxy's defaults: a probe every 2 s, up after 2 successes, down after 3 failures.
    public init(interval: Duration = .seconds(2), timeout: Duration = .seconds(1), rise: Int = 2, fall: Int = 3) {
        self.interval = interval
        self.timeout = timeout
        self.rise = rise
        self.fall = fall
    }

    /// Checks that the values can work together.
    public func validate() throws(HealthCheckConfigurationError) {
        guard self.interval > .zero else { throw .init(field: "interval", problem: "must be positive") }
        guard self.timeout > .zero else { throw .init(field: "timeout", problem: "must be positive") }
        guard self.timeout <= self.interval else {
            throw .init(field: "timeout", problem: "must not exceed the interval (\(GoDuration.format(self.interval)))")
        }
        guard self.rise >= 1 else { throw .init(field: "rise", problem: "must be at least 1") }
        guard self.fall >= 1 else { throw .init(field: "fall", problem: "must be at least 1") }
    }
}

/// A health-check setting that cannot work: names the field and the problem.
public struct HealthCheckConfigurationError: Error, Hashable, CustomStringConvertible {
    /// The field, as configuration files spell it.
    public let field: String
    /// What is wrong with it.
    public let problem: String

    /// An error for `field`, saying `problem`.
    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "health.\(self.field): \(self.problem)" }
}
