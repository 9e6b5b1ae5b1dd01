/// The synthetic addresses of simulated clients: TEST-NET-3 (203.0.113.0/24, RFC 5737) first, then
/// TEST-NET-2 (198.51.100.0/24) and TEST-NET-1 (192.0.2.0/24), then the benchmarking range
/// 198.18.0.0/15 (RFC 2544) when more are needed: 131,832 clients in all.
///
/// They are documentation and benchmarking ranges that route nowhere on the internet, so they can be
/// sent as `X-Forwarded-For` labels without ever naming a real host. They are labels, never
/// destinations.
public enum ClientAddresses {
    /// The three TEST-NET /24 networks in the order they are used.
    public static let networks: [(UInt8, UInt8, UInt8)] = [(203, 0, 113), (198, 51, 100), (192, 0, 2)]
    /// Usable hosts per TEST-NET network (.1 to .254).
    public static let hostsPerNetwork = 254
    /// Clients with a TEST-NET address: the first 762.
    public static let testNetCapacity = Self.networks.count * Self.hostsPerNetwork
    /// The benchmarking range 198.18.0.0/15 as a 32-bit number, and the addresses used in it: every one
    /// but the range's first (198.18.0.0) and last (198.19.255.255), 131,070.
    static let benchmarkingBase: UInt32 = 198 << 24 | 18 << 16
    static let benchmarkingHosts = (1 << 17) - 2
    /// How many clients can have an address of their own.
    public static let capacity = Self.testNetCapacity + Self.benchmarkingHosts

    /// The address of client `index` (0-based): 203.0.113.1, .2, … .254, then 198.51.100.1, … and
    /// 192.0.2.1, … .254, then 198.18.0.1, 198.18.0.2, … 198.19.255.254.
    public static func address(of index: Int) -> String {
        precondition((0..<Self.capacity).contains(index), "client \(index) has no synthetic address (at most \(Self.capacity) clients)")
        guard index >= Self.testNetCapacity else {
            let (a, b, c) = Self.networks[index / Self.hostsPerNetwork]
            return "\(a).\(b).\(c).\(index % Self.hostsPerNetwork + 1)"
        }
        let address = Self.benchmarkingBase + UInt32(index - Self.testNetCapacity + 1)
        return "\(address >> 24).\(address >> 16 & 0xFF).\(address >> 8 & 0xFF).\(address & 0xFF)"
    }

    /// Whether `address` is one this type hands out: a host of TEST-NET-1, 2 or 3, or of 198.18.0.0/15
    /// but its first and last address.
    public static func contains(_ address: String) -> Bool {
        let parts = address.split(separator: ".", omittingEmptySubsequences: false).map { UInt8($0) }
        guard parts.count == 4, let a = parts[0], let b = parts[1], let c = parts[2], let d = parts[3] else { return false }
        if Self.networks.contains(where: { $0 == (a, b, c) }) { return (1...254).contains(d) }
        let value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
        return value > Self.benchmarkingBase && value < Self.benchmarkingBase + (1 << 17) - 1
    }
}
