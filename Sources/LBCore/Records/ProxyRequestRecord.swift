/// One request as the proxy saw it: a row of the `proxy_requests` table (DESIGN §5).
///
/// Joins the client's view (``RequestRecord``) on the request id the load generator sends as
/// `X-Request-Id`. Times are microseconds since the run's start.
public struct ProxyRequestRecord: Sendable, Hashable {
    /// The request id: the client's `X-Request-Id` when it is a number, else one the proxy assigned.
    public var requestID: Int64
    /// When the request head was complete.
    public var receivedMicros: Int64
    /// When the picker chose a backend (the last attempt's pick when retried).
    public var pickedMicros: Int64?
    /// The run's id of the backend that served the last attempt, if any was chosen.
    public var backendID: Int?
    /// When the last attempt's request head went upstream.
    public var upstreamStartMicros: Int64?
    /// When the last attempt's response was complete.
    public var upstreamDoneMicros: Int64?
    /// The status returned to the client.
    public var status: Int?
    /// Attempts made, 1 unless retried.
    public var attempts: Int
    /// The backend of the first failed attempt, when the request was retried.
    public var retriedFrom: Int?
    /// The client address the proxy used for decisions (socket peer or trusted `X-Forwarded-For`).
    public var clientIP: String?

    /// A record with every field given.
    public init(
        requestID: Int64,
        receivedMicros: Int64,
        pickedMicros: Int64?,
        backendID: Int?,
        upstreamStartMicros: Int64?,
        upstreamDoneMicros: Int64?,
        status: Int?,
        attempts: Int,
        retriedFrom: Int?,
        clientIP: String?
    ) {
        self.requestID = requestID
        self.receivedMicros = receivedMicros
        self.pickedMicros = pickedMicros
        self.backendID = backendID
        self.upstreamStartMicros = upstreamStartMicros
        self.upstreamDoneMicros = upstreamDoneMicros
        self.status = status
        self.attempts = attempts
        self.retriedFrom = retriedFrom
        self.clientIP = clientIP
    }
}
