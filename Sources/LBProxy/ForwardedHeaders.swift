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
    /// `peerIsTrusted` is ``isTrusted(_:)`` of `peer`, when the caller knows it already (it holds for a
    /// whole connection).
    public func clientAddress(peer: String, peerIsTrusted: Bool? = nil, headers: HTTPHeaders) -> String {
        guard peerIsTrusted ?? self.isTrusted(peer) else { return peer }
        let chain = Self.forwardedFor(headers)
        return chain.last { !self.isTrusted($0) } ?? chain.first ?? peer
    }

    /// Rewrites a client's request `headers` for the backend. `peer` is the client socket's address;
    /// `requestID` is used when the request has no `X-Request-Id`. Returns the request id sent on.
    @discardableResult
    public func prepareRequest(
        _ headers: inout HTTPHeaders,
        peer: String,
        peerIsTrusted: Bool? = nil,
        requestID: @autoclosure () -> String
    ) -> String {
        let trusted = peerIsTrusted ?? self.isTrusted(peer)
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
        // Look first, remove after: most messages carry at most `Connection: keep-alive`, so this is one
        // pass to find it and one `remove` for it.
        var present: [String] = []
        var listed: [String] = []
        for (name, value) in headers where Self.isHopByHop(name) {
            present.append(name)
            guard Substring(name).caseInsensitiveEquals("connection") else { continue }
            for token in value.split(separator: ",") {
                let option = token.trimmingSpaces
                if !Self.isHopByHop(option), !Substring(option).caseInsensitiveEquals("close") {
                    listed.append(option)
                }
            }
        }
        for name in present + listed {
            headers.remove(name: name)
        }
    }

    private static let hopByHop = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]

    /// Whether `name` is one of RFC 9110's hop-by-hop headers (without looking at `Connection`'s list).
    static func isHopByHop(_ name: String) -> Bool {
        let count = name.utf8.count
        guard count == 2 || count == 7 || count == 10 || count == 16 || count == 17 else { return false }
        return Self.hopByHop.contains { $0.utf8.count == count && Substring($0).caseInsensitiveEquals(name) }
    }

    /// The addresses of `X-Forwarded-For`, leftmost (the original client) first.
    static func forwardedFor(_ headers: HTTPHeaders) -> [String] {
        headers[canonicalForm: "x-forwarded-for"].map { $0.trimmingSpaces }.filter { !$0.isEmpty }
    }
}

extension Substring {
    /// Whether it equals `other` ignoring ASCII letter case.
    func caseInsensitiveEquals(_ other: String) -> Bool {
        guard self.utf8.count == other.utf8.count else { return false }
        return zip(self.utf8, other.utf8).allSatisfy { a, b in
            a == b || (a | 0x20 == b | 0x20 && (a | 0x20) >= UInt8(ascii: "a") && (a | 0x20) <= UInt8(ascii: "z"))
        }
    }

    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        String(self.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
