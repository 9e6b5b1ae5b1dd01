import LBConfig
import LBCore
import NIOHTTP1

extension Service.HashKey {
    /// The hash a hash-based picker places the request `head` by, for a client at `client`; `nil` when
    /// the request lacks the header or cookie named.
    func hash(of head: HTTPRequestHead, client: String) -> UInt64? {
        switch self {
        case .clientIP:
            return StableHash.hash(client)
        case .path:
            return StableHash.hash(head.uri)
        case .header(let name):
            return head.headers.first(name: name).map(StableHash.hash)
        case .cookie(let name):
            for cookie in head.headers[canonicalForm: "cookie"] {
                for pair in cookie.split(separator: ";") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2, parts[0].trimmingSpaces == name {
                        return StableHash.hash(String(parts[1]))
                    }
                }
            }
            return nil
        }
    }
}
