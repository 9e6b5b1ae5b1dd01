public import LBConfig
import LBHTTP

/// Chooses the service of an HTTP request from its Host and path (DESIGN §6).
///
/// Among the services whose route matches, the most specific wins: an exact host before a wildcard
/// (`*.example.test`) before a route without hosts, then the longest path prefix; equal ones go by
/// their order in the file. The path prefix is a plain string prefix, as Envoy's `prefix` and nginx's
/// prefix `location` are (`/api` also matches `/apix`; write `/api/` to mean the directory). The
/// service without a route takes whatever no route matches. A request target in absolute form
/// (`http://host/path`, as a client sends to a proxy it was told about) routes by its authority and
/// path, and its `Host` header does not count (RFC 9112 §3.2.2).
///
/// A request is routed on its bytes, as the head holds them: host names compare ignoring ASCII case.
public struct ServiceRouter: Sendable {
    private struct Entry: Sendable {
        var index: Int
        var exactHosts: [[UInt8]]  // lower case
        var wildcardSuffixes: [[UInt8]]  // ".example.test" for "*.example.test", lower case
        var anyHost: Bool
        var pathPrefix: [UInt8]
    }

    private let entries: [Entry]
    private let defaultIndex: Int?

    /// A router over `services`, whose indices ``route(host:path:)`` returns.
    public init(services: [Service]) {
        self.init(indexed: Array(services.enumerated()))
    }

    /// A router over `indexed` services, in the order given; ``route(host:path:)`` returns the index
    /// paired with a service.
    public init(indexed: [(offset: Int, element: Service)]) {
        var entries: [Entry] = []
        var defaultIndex: Int?
        for (index, service) in indexed {
            guard let route = service.route else {
                defaultIndex = defaultIndex ?? index
                continue
            }
            let hosts = route.hosts.map { $0.lowercased() }
            entries.append(
                Entry(
                    index: index,
                    exactHosts: hosts.filter { !$0.hasPrefix("*.") }.map { Array($0.utf8) },
                    wildcardSuffixes: hosts.filter { $0.hasPrefix("*.") }.map { Array($0.utf8.dropFirst()) },
                    anyHost: hosts.isEmpty,
                    pathPrefix: Array(route.pathPrefix.utf8)
                )
            )
        }
        self.entries = entries
        self.defaultIndex = defaultIndex
    }

    /// The one service every request goes to, when no service has a route (so a request's Host and path
    /// need not be read).
    public var onlyService: Int? { self.entries.isEmpty ? self.defaultIndex : nil }

    /// The index of the service for a request with this `Host` header value (port and letter case
    /// do not matter) and request target, or `nil` when no service takes it.
    public func route(host: String?, path: String) -> Int? {
        var path = path
        return path.withUTF8 { target in
            let target = UnsafeRawBufferPointer(target)
            let authority = HTTPBytes.absoluteFormAuthority(target)
            guard var host else { return self.route(host: nil, target: target, authority: authority) }
            return host.withUTF8 { self.route(host: UnsafeRawBufferPointer($0), target: target, authority: authority) }
        }
    }

    /// ``route(host:path:)`` on the bytes of the `Host` value and the request target, with the
    /// target's `authority` (a range of `target`) when it is in absolute form (``HTTPHead/authority``).
    func route(host: UnsafeRawBufferPointer?, target: UnsafeRawBufferPointer, authority: Range<Int>?) -> Int? {
        var name = host.map(Self.hostName) ?? UnsafeRawBufferPointer(start: nil, count: 0)
        var path = target
        // `http://host` and `http://host?query` have the path `/`, which the target does not hold.
        var slashImplied = false
        if let authority {
            name = Self.hostName(UnsafeRawBufferPointer(rebasing: target[authority]))
            path = UnsafeRawBufferPointer(rebasing: target[authority.upperBound...])
            slashImplied = path.first != UInt8(ascii: "/")
        }
        var best: (index: Int, hostRank: Int, prefixLength: Int)?
        for entry in self.entries where Self.path(path, slashImplied: slashImplied, hasPrefix: entry.pathPrefix) {
            let hostRank: Int
            if entry.exactHosts.contains(where: { Self.equalIgnoringCase(name, $0) }) {
                hostRank = 2
            } else if entry.wildcardSuffixes.contains(where: { name.count > $0.count && Self.hasSuffixIgnoringCase(name, $0) }) {
                hostRank = 1
            } else if entry.anyHost {
                hostRank = 0
            } else {
                continue
            }
            let prefixLength = entry.pathPrefix.count
            if let current = best, (current.hostRank, current.prefixLength) >= (hostRank, prefixLength) { continue }
            best = (entry.index, hostRank, prefixLength)
        }
        return best?.index ?? self.defaultIndex
    }

    /// The bytes of `host` without its port (letter case kept): `API.example.test:8080` →
    /// `API.example.test`, `[::1]:8080` → `[::1]`.
    static func hostName(_ host: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        if host.first == UInt8(ascii: "[") {
            guard let close = host.firstIndex(of: UInt8(ascii: "]")) else { return host }
            return UnsafeRawBufferPointer(rebasing: host[...close])
        }
        guard let colon = host.lastIndex(of: UInt8(ascii: ":")) else { return host }
        return UnsafeRawBufferPointer(rebasing: host[..<colon])
    }

    /// Whether `path`, behind a `/` when `slashImplied`, starts with `prefix`.
    private static func path(_ path: UnsafeRawBufferPointer, slashImplied: Bool, hasPrefix prefix: [UInt8]) -> Bool {
        var prefix = prefix[...]
        if slashImplied, let first = prefix.first {
            guard first == UInt8(ascii: "/") else { return false }
            prefix = prefix.dropFirst()
        }
        return path.count >= prefix.count && path.prefix(prefix.count).elementsEqual(prefix)
    }

    private static func equalIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: [UInt8]) -> Bool {
        lowercase.withUnsafeBytes { HTTPBytes.equalIgnoringCase(bytes, $0) }
    }

    private static func hasSuffixIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: [UInt8]) -> Bool {
        guard bytes.count >= lowercase.count else { return false }
        return Self.equalIgnoringCase(UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - lowercase.count)...]), lowercase)
    }
}
