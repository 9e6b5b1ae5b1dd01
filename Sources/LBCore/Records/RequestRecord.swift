/// One request as the client saw it: a row of the `requests` table (DESIGN §5).
///
/// Times are microseconds since the run's start (`t0`) on the monotonic clock. Latency as the user saw
/// it is ``doneMicros`` − ``intendedMicros`` (corrected for coordinated omission); service time is
/// ``doneMicros`` − ``sentMicros``.
public struct RequestRecord: Sendable, Hashable {
    /// The request's number in the run; sent as `X-Request-Id`, so the proxy's view joins on it.
    public var id: Int64
    /// The simulated client that sent it (0-based).
    public var clientID: Int32
    /// The client's synthetic address (TEST-NET), sent as `X-Forwarded-For`.
    public var clientIP: String
    /// When the schedule meant the request to go out.
    public var intendedMicros: Int64
    /// When its first byte was written.
    public var sentMicros: Int64
    /// When the first byte of the response arrived, if one did.
    public var firstByteMicros: Int64?
    /// When the response was complete, or the request failed.
    public var doneMicros: Int64
    /// The HTTP status, or `nil` when no response arrived.
    public var status: Int?
    /// The run's id of the backend that served it (from `X-LBLab-Backend`), if known.
    public var backendID: Int?
    /// How many times it was sent (1 unless retried).
    public var attempts: Int
    /// Response bytes received (body).
    public var bytesIn: Int64
    /// Request bytes sent (body).
    public var bytesOut: Int64
    /// Why it failed without a response, or `nil`.
    public var error: RequestFailure?
    /// The key sent in `X-LBLab-Key` (for hashing algorithms), or `nil` when the load sends none.
    public var key: Int?

    /// A record with every field given.
    public init(
        id: Int64,
        clientID: Int32,
        clientIP: String,
        intendedMicros: Int64,
        sentMicros: Int64,
        firstByteMicros: Int64?,
        doneMicros: Int64,
        status: Int?,
        backendID: Int?,
        attempts: Int = 1,
        bytesIn: Int64,
        bytesOut: Int64,
        error: RequestFailure?,
        key: Int? = nil
    ) {
        self.id = id
        self.clientID = clientID
        self.clientIP = clientIP
        self.intendedMicros = intendedMicros
        self.sentMicros = sentMicros
        self.firstByteMicros = firstByteMicros
        self.doneMicros = doneMicros
        self.status = status
        self.backendID = backendID
        self.attempts = attempts
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.error = error
        self.key = key
    }
}

/// Why a request got no HTTP response; stored in `requests.error` by its raw value.
public enum RequestFailure: String, Sendable, Hashable, CaseIterable, Codable {
    /// The connection to the target could not be made.
    case connectFailed = "connect"
    /// No complete response within the request timeout.
    case timedOut = "timeout"
    /// The connection closed or reset before the response was complete.
    case connectionClosed = "closed"
    /// The response could not be parsed as HTTP/1.1.
    case badResponse = "protocol"
    /// The run stopped (Ctrl-C, SIGTERM, end of the duration) while the request was in flight.
    case interrupted = "interrupted"
}
