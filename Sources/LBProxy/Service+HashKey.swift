import LBConfig
import LBCore
import LBHTTP

extension Service.HashKey {
    /// The hash a hash-based picker places the request `head` by, for a client whose address hashes to
    /// `clientKey`; `nil` when the request lacks the header or cookie named.
    func hash(of head: HTTPHead, fields: [HTTPHeaderField], clientKey: UInt64) -> UInt64? {
        switch self {
        case .clientIP:
            return clientKey
        case .path:
            return Self.hash(head, head.target)
        case .header(let name):
            var name = name
            return name.withUTF8 { wanted in
                fields.first { field in
                    head.bytes.withUnsafeReadableBytes {
                        HTTPBytes.equalIgnoringCase(UnsafeRawBufferPointer(rebasing: $0[field.name]), UnsafeRawBufferPointer(wanted))
                    }
                }.map { Self.hash(head, $0.value) }
            }
        case .cookie(let name):
            for field in fields where field.kind == .other && head.string(field.name).lowercased() == "cookie" {
                for pair in head.string(field.value).split(separator: ";") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2, parts[0].trimmingSpaces == name {
                        return StableHash.hash(String(parts[1]))
                    }
                }
            }
            return nil
        }
    }

    private static func hash(_ head: HTTPHead, _ range: Range<Int>) -> UInt64 {
        head.bytes.withUnsafeReadableBytes { StableHash.hash(bytes: UnsafeRawBufferPointer(rebasing: $0[range])) }
    }
}
