import LBCore
import Testing

@Suite("Address ranges")
struct AddressRangeTests {
    @Test("IPv4 networks contain their addresses and no others")
    func ipv4() throws {
        let range = try AddressRange(parsing: "10.1.0.0/16")
        #expect(range.contains("10.1.0.1") && range.contains("10.1.255.255"))
        #expect(!range.contains("10.2.0.1") && !range.contains("::1") && !range.contains("not an address"))
        #expect(try AddressRange(parsing: "0.0.0.0/0").contains("203.0.113.7"))
        #expect(try AddressRange(parsing: "203.0.113.7").contains("203.0.113.7"))
        #expect(try !AddressRange(parsing: "203.0.113.7").contains("203.0.113.8"))
    }

    @Test("IPv6 networks, compressed forms and IPv4-mapped addresses")
    func ipv6() throws {
        #expect(AddressRange.loopback.contains { $0.contains("::1") })
        #expect(AddressRange.loopback.contains { $0.contains("127.0.0.1") })
        let range = try AddressRange(parsing: "2001:db8::/32")
        #expect(range.contains("2001:db8::1") && range.contains("2001:0db8:ffff::"))
        #expect(!range.contains("2001:db9::1"))
        #expect(try AddressRange(parsing: "::ffff:0:0/96").contains("192.0.2.1"), "IPv4 is held as IPv4-mapped IPv6")
        #expect(try AddressRange(parsing: "::ffff:192.0.2.0/120").contains("192.0.2.200"))
    }

    @Test("malformed ranges say what is wrong", arguments: ["10.0.0.0/33", "10.0.0/8", "1.2.3.256", "::1/129", "1::2::3", "fe80::/x", ""])
    func malformed(_ text: String) {
        #expect(throws: MalformedValue.self) { try AddressRange(parsing: text) }
    }
}
