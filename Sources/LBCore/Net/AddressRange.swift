/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`, or one address): the sources whose
/// `X-Forwarded-For` the proxy believes.
///
/// Addresses are held as 128 bits, IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so one comparison
/// serves both families.
public struct AddressRange: Sendable, Hashable, CustomStringConvertible {
    private let network: (high: UInt64, low: UInt64)
    private let mask: (high: UInt64, low: UInt64)
    /// As it was written.
    public let description: String

    /// 127.0.0.0/8 and ::1.
    public static let loopback: [AddressRange] = [
        try! AddressRange(parsing: "127.0.0.0/8"), try! AddressRange(parsing: "::1/128"),
    ]

    /// Reads `a.b.c.d/len`, an IPv6 address with `/len`, or a single address of either family.
    public init(parsing text: String) throws(MalformedValue) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = Self.parseAddress(String(parts[0])) else {
            throw MalformedValue(text: text, problem: "is not an IP address or network (e.g. 10.0.0.0/8, ::1)")
        }
        let isV4 = !parts[0].contains(":")
        var length = 128
        if parts.count == 2 {
            guard let given = Int(parts[1]), given >= 0, given <= (isV4 ? 32 : 128) else {
                throw MalformedValue(text: text, problem: "has a prefix length outside 0...\(isV4 ? 32 : 128)")
            }
            length = isV4 ? 96 + given : given
        }
        let maskHigh: UInt64 = length >= 64 ? .max : (length == 0 ? 0 : ~UInt64(0) << (64 - length))
        let maskLow: UInt64 = length <= 64 ? 0 : (length == 128 ? .max : ~UInt64(0) << (128 - length))
        self.mask = (maskHigh, maskLow)
        self.network = (address.high & maskHigh, address.low & maskLow)
        self.description = text
    }

    /// Whether `address` (IPv4 dotted or IPv6 text) is in the range; text that is no address is not.
    public func contains(_ address: String) -> Bool {
        guard let value = Self.parseAddress(address) else { return false }
        return value.high & self.mask.high == self.network.high && value.low & self.mask.low == self.network.low
    }

    public static func == (lhs: AddressRange, rhs: AddressRange) -> Bool {
        lhs.network == rhs.network && lhs.mask == rhs.mask
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.network.high)
        hasher.combine(self.network.low)
        hasher.combine(self.mask.high)
        hasher.combine(self.mask.low)
    }

    /// An address as 128 bits; IPv4 mapped into `::ffff:0:0/96`.
    static func parseAddress(_ text: String) -> (high: UInt64, low: UInt64)? {
        if !text.contains(":") {
            guard let v4 = Self.parseIPv4(Substring(text)) else { return nil }
            return (0, 0xFFFF_0000_0000 | UInt64(v4))
        }
        return Self.parseIPv6(text)
    }

    private static func parseIPv4(_ text: Substring) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard !octet.isEmpty, octet.count <= 3, octet.allSatisfy(\.isASCII), let byte = UInt8(octet) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    private static func parseIPv6(_ text: String) -> (high: UInt64, low: UInt64)? {
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, field) in fields.enumerated() {
                if index == fields.count - 1, field.contains(".") {
                    guard let v4 = Self.parseIPv4(field) else { return nil }
                    result += [UInt16(v4 >> 16), UInt16(v4 & 0xFFFF)]
                } else {
                    guard (1...4).contains(field.count), let group = UInt16(field, radix: 16) else { return nil }
                    result.append(group)
                }
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        let high = all[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = all[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return (high, low)
    }
}
