public import LBCore
public import NIOHTTP1

/// The headers a proxy rewrites between client and backend: hop-by-hop headers removed (RFC 9110
/// §7.6.1), `X-Forwarded-For`, `-Proto` and `-Host` set, and an `X-Request-Id` passed on or given.
///
/// `X-Forwarded-*` headers are believed only from ``trustedProxies`` (the load generator on loopback, a
/// proxy in front); from anyone else they are replaced, so a client cannot choose the address an
/// `ip-hash` service hashes or a log records.
public struct ForwardedHeaders: Sendable {
    /// Sources whose `X-Forwarded-*` headers are believed.
    public let trustedProxies: [AddressRange]

    /// A rewriter believing `trustedProxies`.
    public init(trustedProxies: [AddressRange]) {
        self.trustedProxies = trustedProxies
    }

    /// Whether `address` is a trusted proxy.
    public func isTrusted(_ address: String) -> Bool {
        self.trustedProxies.contains { $0.contains(address) }
    }

    /// The client's address: the socket peer's, unless the peer is trusted, in which case the rightmost
    /// address of `X-Forwarded-For` that is not itself a trusted proxy (or the leftmost, when all are).
    public func clientAddress(peer: String, headers: HTTPHeaders) -> String {
        guard self.isTrusted(peer) else { return peer }
        let chain = Self.forwardedFor(headers)
        return chain.last { !self.isTrusted($0) } ?? chain.first ?? peer
    }

    /// Rewrites a client's request `headers` for the backend. `peer` is the client socket's address;
    /// `requestID` is used when the request has no `X-Request-Id`. Returns the request id sent on.
    @discardableResult
    public func prepareRequest(_ headers: inout HTTPHeaders, peer: String, requestID: @autoclosure () -> String) -> String {
        let trusted = self.isTrusted(peer)
        let host = headers.first(name: "host")
        Self.removeHopByHop(&headers)
        if trusted, headers.contains(name: "x-forwarded-for") {
            let chain = headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
            headers.replaceOrAdd(name: "X-Forwarded-For", value: chain + ", " + peer)
        } else {
            headers.replaceOrAdd(name: "X-Forwarded-For", value: peer)
        }
        if !trusted || !headers.contains(name: "x-forwarded-proto") {
            headers.replaceOrAdd(name: "X-Forwarded-Proto", value: "http")
        }
        if !trusted || !headers.contains(name: "x-forwarded-host") {
            if let host {
                headers.replaceOrAdd(name: "X-Forwarded-Host", value: host)
            } else {
                headers.remove(name: "X-Forwarded-Host")
            }
        }
        if let id = headers.first(name: "x-request-id"), !id.isEmpty {
            return id
        }
        let id = requestID()
        headers.replaceOrAdd(name: "X-Request-Id", value: id)
        return id
    }

    /// Removes the hop-by-hop headers of RFC 9110 §7.6.1 (`Connection` and those it names,
    /// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`), which
    /// describe one connection and must not be forwarded. Framing is set anew on the other side.
    public static func removeHopByHop(_ headers: inout HTTPHeaders) {
        for named in headers[canonicalForm: "connection"] {
            headers.remove(name: String(named))
        }
        for name in ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"] {
            headers.remove(name: name)
        }
    }

    /// The addresses of `X-Forwarded-For`, leftmost (the original client) first.
    static func forwardedFor(_ headers: HTTPHeaders) -> [String] {
        headers[canonicalForm: "x-forwarded-for"].map { $0.trimmingSpaces }.filter { !$0.isEmpty }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        String(self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
