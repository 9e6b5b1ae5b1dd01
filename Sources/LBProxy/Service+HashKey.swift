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
            var name = name
            return name.withUTF8 { wanted in
                head.bytes.withUnsafeReadableBytes { bytes in
                    for field in fields where field.kind == .other
                        && HTTPBytes.equalsLowercased(UnsafeRawBufferPointer(rebasing: bytes[field.name]), "cookie")
                    {
                        let value = UnsafeRawBufferPointer(rebasing: bytes[field.value])
                        if let cookie = Self.cookie(named: UnsafeRawBufferPointer(wanted), in: value) {
                            return StableHash.hash(bytes: cookie)
                        }
                    }
                    return nil
                }
            }
        }
    }

    /// The value of the cookie `name` in a `Cookie` header's `value` (`a=1; b=2`), without the
    /// spaces and tabs around it; `nil` when it is not there or empty. Read in place: the header comes
    /// with every request of a service that hashes by cookie.
    static func cookie(named name: UnsafeRawBufferPointer, in value: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        var start = 0
        while start < value.count {
            var end = start
            while end < value.count, value[end] != UInt8(ascii: ";") { end += 1 }
            if let equals = value[start..<end].firstIndex(of: UInt8(ascii: "=")) {
                let pairName = HTTPBytes.trimmed(UnsafeRawBufferPointer(rebasing: value[start..<equals]))
                let pairValue = HTTPBytes.trimmed(UnsafeRawBufferPointer(rebasing: value[(equals + 1)..<end]))
                if !pairValue.isEmpty, pairName.elementsEqual(name) { return pairValue }
            }
            start = end + 1
        }
        return nil
    }

    private static func hash(_ head: HTTPHead, _ range: Range<Int>) -> UInt64 {
        head.bytes.withUnsafeReadableBytes { StableHash.hash(bytes: UnsafeRawBufferPointer(rebasing: $0[range])) }
    }
}
