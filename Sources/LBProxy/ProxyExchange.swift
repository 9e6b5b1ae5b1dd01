import LBCore
import NIOCore

/// One request's way through the proxy, as ``ProxyHTTPHandler`` serves it: where it goes, the attempt in
/// flight, the body kept for a retry, and how far the request and the response have got.
///
/// Exchanges are reused: a finished one goes back to its loop (``LoopContext/returnExchange(_:)``) and
/// serves a later request on any of the loop's connections (``begin``), so the request path allocates
/// none. Its two buffers, the request's head as it goes upstream and the response's head as it goes to
/// the client, keep their storage from one request to the next: once the socket took their bytes, no one
/// else holds them, and clearing one keeps its memory.
final class ProxyExchange {
    /// A buffer kept for the next request holds at most this much; a larger one (a rare head of many
    /// kilobytes) is let go.
    static let keptBufferCapacity = 4 * 1024

    /// The service's index in the runtime.
    private(set) var service = 0
    /// The request's head as it goes to the backend (rewritten), written again for a retry. The
    /// handler clears and writes it for each request.
    var head = ByteBuffer()
    /// The response's head (and a small body) as it goes to the client, kept after the write for the next
    /// request's (``takeResponseBuffer(capacity:allocator:)``).
    private var response: ByteBuffer?
    /// The method, for the retry policy.
    private(set) var method = "GET"
    private(set) var isHEAD = false
    /// Whether the client keeps the connection open after this request, and whether it speaks HTTP/1.0
    /// (which needs `Connection: keep-alive` said).
    private(set) var clientKeepAlive = true
    private(set) var clientIsHTTP10 = false
    /// Whether the request asks the backend to switch protocols (``HTTPHead/upgrade``).
    private(set) var upgrade = false
    /// What the picker knows of the request.
    private(set) var pick = PickRequest(now: Instant(nanoseconds: 0))
    /// When the whole request must have been answered (uptime nanoseconds); in a tunnel, when it is
    /// next looked at for being idle.
    var deadline = UInt64.max
    /// Attempts so far (1 for the first), and a number no other attempt on the connection has.
    var attempt = 0
    var attemptID = 0
    /// The backends tried, which a retry avoids.
    var tried: [ObjectIdentifier] = []
    /// The backend of the attempt in flight, and its connection once made.
    var backend: LoopBackend?
    var upstream: UpstreamConnection?
    /// When the attempt in flight started (uptime nanoseconds), for the latency its picker learns.
    var attemptStartNanos: UInt64 = 0
    /// When the response's head must have arrived, while it is awaited (uptime nanoseconds).
    var headerDeadline = UInt64.max
    /// The backend whose queue the request waits in, with its place in it, and until when.
    var waiting: (backend: LoopBackend, id: Int)?
    var queueDeadline = UInt64.max
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
    /// The backend's status, once its response head came.
    var status = 0
    /// Whether the attempt in flight is a retry (and holds a place in the retry budget).
    var isRetry = false
    /// Whether the request went again on a new connection after a reused one closed on it.
    var resent = false
    /// Whether the backend switched protocols: from its 101 on, the two connections are a tunnel (a
    /// WebSocket) whose bytes pass both ways until either side closes.
    var tunnel = false
    /// In a tunnel: when bytes last went either way, and how long it may go without (nanoseconds).
    var lastActivityNanos: UInt64 = 0
    var tunnelIdleNanos: UInt64 = 0

    // What the record of the request keeps (with -db or an access log).
    /// The request's number: the client's `X-Request-Id` when it is one, else the proxy's own.
    var recordID: Int64 = 0
    /// When the head was complete, the last pick made, and the last attempt's head went upstream
    /// (uptime nanoseconds; 0 for not yet).
    var receivedNanos: UInt64 = 0
    var pickedNanos: UInt64 = 0
    var upstreamStartNanos: UInt64 = 0
    /// The backend of the first failed attempt, and of the last attempt.
    var firstFailed: LoopBackend?
    var lastBackend: LoopBackend?
    /// The status the client was answered with, if it was.
    var clientStatus: Int?
    /// The client's address as decided, and the request target (kept only for the access log).
    var clientIP = ""
    var target: String?

    /// Starts serving a new request; everything of the previous one is forgotten.
    func begin(
        service: Int,
        method: String,
        clientKeepAlive: Bool,
        clientIsHTTP10: Bool,
        upgrade: Bool,
        pick: PickRequest,
        deadline: UInt64
    ) {
        self.service = service
        self.method = method
        self.isHEAD = method == "HEAD"
        self.clientKeepAlive = clientKeepAlive
        self.clientIsHTTP10 = clientIsHTTP10
        self.upgrade = upgrade
        self.pick = pick
        self.deadline = deadline
        self.attempt = 0
        self.tried.removeAll(keepingCapacity: true)
        self.backend = nil
        self.upstream = nil
        self.attemptStartNanos = 0
        self.headerDeadline = .max
        self.waiting = nil
        self.queueDeadline = .max
        self.body.removeAll()
        self.bodyBytes = 0
        self.bodyReplayable = true
        self.requestComplete = false
        self.requestSent = false
        self.responseStarted = false
        self.keepClient = true
        self.status = 0
        self.isRetry = false
        self.resent = false
        self.tunnel = false
        self.pickedNanos = 0
        self.upstreamStartNanos = 0
        self.firstFailed = nil
        self.lastBackend = nil
        self.clientStatus = nil
        self.target = nil
    }

    /// The backend's response head came with `status`, and goes to the client: no header deadline
    /// any more, and no retry.
    func responseBegan(status: Int) {
        self.headerDeadline = .max
        self.responseStarted = true
        self.status = status
        self.clientStatus = status
    }

    /// An empty buffer for the response's head of at least `capacity` bytes, with the storage of an
    /// earlier one when the socket is done with it.
    func takeResponseBuffer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var buffer = self.response.take() else { return allocator.buffer(capacity: capacity) }
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }

    /// Keeps `buffer`, just written to the client, for the next response's head.
    func keepResponseBuffer(_ buffer: ByteBuffer) {
        if buffer.capacity <= Self.keptBufferCapacity { self.response = buffer }
    }

    /// Lets go of what the finished request held (its body, its connection, a large head).
    func clear() {
        if self.head.capacity > Self.keptBufferCapacity { self.head = ByteBuffer() }
        self.body.removeAll()
        self.upstream = nil
        self.backend = nil
        self.waiting = nil
        self.firstFailed = nil
        self.lastBackend = nil
    }
}

@available(*, unavailable)
extension ProxyExchange: Sendable {}
