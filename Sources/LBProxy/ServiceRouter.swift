public import LBConfig

/// Chooses the service of an HTTP request from its Host and path (DESIGN §6).
///
/// Among the services whose route matches, the most specific wins: an exact host before a wildcard
/// (`*.example.test`) before a route without hosts, then the longest path prefix; equal ones go by
/// their order in the file. The path prefix is a plain string prefix, as Envoy's `prefix` and nginx's
/// prefix `location` are (`/api` also matches `/apix`; write `/api/` to mean the directory). The
/// service without a route takes whatever no route matches.
public struct ServiceRouter: Sendable {
    private struct Entry: Sendable {
        var index: Int
        var exactHosts: Set<String>
        var wildcardSuffixes: [String]  // ".example.test" for "*.example.test"
        var anyHost: Bool
        var pathPrefix: String
    }

    private let entries: [Entry]
    private let defaultIndex: Int?

    /// A router over `services`, whose indices ``route(host:path:)`` returns.
    public init(services: [Service]) {
        var entries: [Entry] = []
        var defaultIndex: Int?
        for (index, service) in services.enumerated() {
            guard let route = service.route else {
                defaultIndex = defaultIndex ?? index
                continue
            }
            let hosts = route.hosts.map { $0.lowercased() }
            entries.append(
                Entry(
                    index: index,
                    exactHosts: Set(hosts.filter { !$0.hasPrefix("*.") }),
                    wildcardSuffixes: hosts.filter { $0.hasPrefix("*.") }.map { String($0.dropFirst()) },
                    anyHost: hosts.isEmpty,
                    pathPrefix: route.pathPrefix
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
        let name = host.map(Self.hostName) ?? ""
        var best: (index: Int, hostRank: Int, prefixLength: Int)?
        for entry in self.entries where path.hasPrefix(entry.pathPrefix) {
            let hostRank: Int
            if entry.exactHosts.contains(name) {
                hostRank = 2
            } else if entry.wildcardSuffixes.contains(where: { name.hasSuffix($0) && name.count > $0.count }) {
                hostRank = 1
            } else if entry.anyHost {
                hostRank = 0
            } else {
                continue
            }
            let prefixLength = entry.pathPrefix.utf8.count
            if let current = best, (current.hostRank, current.prefixLength) >= (hostRank, prefixLength) { continue }
            best = (entry.index, hostRank, prefixLength)
        }
        return best?.index ?? self.defaultIndex
    }

    /// `Host` without its port, in lower case: `API.example.test:8080` → `api.example.test`,
    /// `[::1]:8080` → `[::1]`.
    static func hostName(_ host: String) -> String {
        var name = Substring(host)
        if name.hasPrefix("[") {
            if let close = name.firstIndex(of: "]") { name = name[...close] }
        } else if let colon = name.lastIndex(of: ":") {
            name = name[..<colon]
        }
        return name.lowercased()
    }
}
