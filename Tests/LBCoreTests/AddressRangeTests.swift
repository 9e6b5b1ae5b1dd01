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

    @Test("one address written in every form IPv6 allows is the same 128 bits")
    func ipv6Forms() throws {
        let one = try AddressRange(parsing: "2001:db8::1")
        for text in ["2001:db8::1", "2001:DB8:0:0:0:0:0:1", "2001:0db8:0000::0001", "2001:db8:0::0:1"] {
            #expect(one.contains(text), "\(text)")
        }
        let mapped = try AddressRange(parsing: "192.0.2.1")
        for text in ["::ffff:192.0.2.1", "0:0:0:0:0:ffff:c000:201", "::ffff:c000:0201", "0:0:0:0:0:ffff:192.0.2.1"] {
            #expect(mapped.contains(text), "\(text)")
        }
        #expect(try AddressRange(parsing: "1:2:3:4:5:6:7::").contains("1:2:3:4:5:6:7:0"), "a gap of one group")
        #expect(try AddressRange(parsing: "::").contains("0:0:0:0:0:0:0:0"))
        #expect(try AddressRange(parsing: "::2:0:0:0:0:0:0").contains("0:2::"))
    }

    @Test(
        "text that is no address is in no range",
        arguments: [
            "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "0001.2.3.4", "+1.2.3.4", "1.2.3.-4", "256.1.1.1", "1.2.3.4 ",
            ":1", "1:", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "12345::", "::g", "::ffff:1.2.3",
            "::ffff:1.2.3.4:5", "1:2:3:4:5:6:7:1.2.3.4", "fe80::1%eth0", "[::1]", "", ":", ":::",
        ]
    )
    func notAnAddress(_ text: String) throws {
        #expect(try !AddressRange(parsing: "0.0.0.0/0").contains(text))
        #expect(try !AddressRange(parsing: "::/0").contains(text))
    }

    @Test("malformed ranges say what is wrong", arguments: ["10.0.0.0/33", "10.0.0/8", "1.2.3.256", "::1/129", "1::2::3", "fe80::/x", ""])
    func malformed(_ text: String) {
        #expect(throws: MalformedValue.self) { try AddressRange(parsing: text) }
    }
}
