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
        var address = address
        return address.withUTF8 { self.contains(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// Whether the address written in `utf8` (IPv4 dotted or IPv6 text) is in the range; bytes that
    /// are no address are not. Reads the bytes in place, as the proxy does for every `X-Forwarded-For`.
    public func contains(utf8 address: UnsafeRawBufferPointer) -> Bool {
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
        var text = text
        return text.withUTF8 { Self.parseAddress(UnsafeRawBufferPointer($0)) }
    }

    /// The address written in `text` as 128 bits, or `nil` when it is no IPv4 or IPv6 address.
    static func parseAddress(_ text: UnsafeRawBufferPointer) -> (high: UInt64, low: UInt64)? {
        if !text.contains(UInt8(ascii: ":")) {
            guard let v4 = Self.parseIPv4(text) else { return nil }
            return (0, 0xFFFF_0000_0000 | UInt64(v4))
        }
        return Self.parseIPv6(text)
    }

    /// `a.b.c.d`: four decimal octets of one to three digits, each at most 255.
    private static func parseIPv4(_ text: UnsafeRawBufferPointer) -> UInt32? {
        var value: UInt32 = 0
        var octets = 0
        var octet: UInt32 = 0
        var digits = 0
        for byte in text {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, octets < 3 else { return nil }
                value = value << 8 | octet
                octets += 1
                octet = 0
                digits = 0
            } else {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 3 else { return nil }
                octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard octet <= 255 else { return nil }
            }
        }
        guard digits > 0, octets == 3 else { return nil }
        return value << 8 | octet
    }

    /// Eight groups of one to four hex digits separated by `:`, where one `::` stands for a run of
    /// zero groups and the last two groups may be written as an IPv4 address (`::ffff:192.0.2.1`).
    private static func parseIPv6(_ text: UnsafeRawBufferPointer) -> (high: UInt64, low: UInt64)? {
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: 8) { groups -> (high: UInt64, low: UInt64)? in
            let colon = UInt8(ascii: ":")
            let end = text.count
            var count = 0
            var gap: Int?  // where `::` stands, as an index into `groups`
            var index = 0
            if end >= 2, text[0] == colon, text[1] == colon {
                gap = 0
                index = 2
            }
            while index < end {
                let start = index
                var group: UInt16 = 0
                while index < end, let digit = Self.hexValue(text[index]) {
                    guard index - start < 4 else { return nil }
                    group = group << 4 | UInt16(digit)
                    index += 1
                }
                if index < end, text[index] == UInt8(ascii: ".") {
                    // The last 32 bits as IPv4, to the end of the text.
                    guard count <= 6, let v4 = Self.parseIPv4(UnsafeRawBufferPointer(rebasing: text[start..<end])) else { return nil }
                    groups[count] = UInt16(v4 >> 16)
                    groups[count + 1] = UInt16(v4 & 0xFFFF)
                    count += 2
                    index = end
                    break
                }
                guard index > start, count < 8 else { return nil }
                groups[count] = group
                count += 1
                if index == end { break }
                guard text[index] == colon, index + 1 < end else { return nil }
                index += 1
                if text[index] == colon {
                    guard gap == nil else { return nil }
                    gap = count
                    index += 1
                }
            }
            if let gap {
                guard count < 8 else { return nil }
                let moved = count - gap
                for offset in stride(from: moved - 1, through: 0, by: -1) {
                    groups[8 - moved + offset] = groups[gap + offset]
                }
                for zero in gap..<(8 - moved) { groups[zero] = 0 }
            } else {
                guard count == 8 else { return nil }
            }
            var high: UInt64 = 0
            var low: UInt64 = 0
            for position in 0..<4 { high = high << 16 | UInt64(groups[position]) }
            for position in 4..<8 { low = low << 16 | UInt64(groups[position]) }
            return (high, low)
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
