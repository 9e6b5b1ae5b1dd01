import LBCore
import NIOCore

/// One request's way through the proxy, as ``ProxyHTTPHandler`` serves it: where it goes, the attempt in
/// flight, the body kept for a retry, and how far the request and the response have got.
struct ProxyExchange {
    /// The service's index in the runtime.
    let service: Int
    /// The request's head as it goes to the backend (rewritten), written again for a retry.
    let head: ByteBuffer
    /// The method, for the retry policy.
    let method: String
    let isHEAD: Bool
    /// Whether the client keeps the connection open after this request, and whether it speaks HTTP/1.0
    /// (which needs `Connection: keep-alive` said).
    let clientKeepAlive: Bool
    let clientIsHTTP10: Bool
    /// What the picker knows of the request.
    let pick: PickRequest
    /// When the whole request must have been answered (uptime nanoseconds).
    let deadline: UInt64
    /// Attempts so far (1 for the first).
    var attempt = 0
    /// The backends tried, which a retry avoids.
    var tried: [Int] = []
    /// The backend of the attempt in flight, and its connection once made.
    var backend: Int?
    var upstream: UpstreamConnection?
    /// When the attempt in flight started (uptime nanoseconds), for the latency its picker learns.
    var attemptStartNanos: UInt64 = 0
    /// When the response's head must have arrived, while it is awaited (uptime nanoseconds).
    var headerDeadline = UInt64.max
    /// Body bytes received and not yet sent (while connecting), or kept for a retry.
    var body: [ByteBuffer] = []
    var bodyBytes = 0
    var bodyReplayable = true
    /// Whether the client sent its whole request, and whether all of it went to the backend.
    var requestComplete = false
    var requestSent = false
    /// Whether the response's head went to the client (no retry after that), and whether the client's
    /// connection stays open after it.
    var responseStarted = false
    var keepClient = true
    /// Whether the attempt in flight is a retry (and holds a place in the retry budget).
    var isRetry = false
}
