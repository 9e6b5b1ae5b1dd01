/// The synthetic addresses of simulated clients: TEST-NET-3 (203.0.113.0/24, RFC 5737) first, then
/// TEST-NET-2 (198.51.100.0/24) and TEST-NET-1 (192.0.2.0/24) when more are needed.
///
/// They are documentation ranges that route nowhere, so they can be sent as `X-Forwarded-For` labels
/// without ever naming a real host. They are labels, never destinations.
public enum ClientAddresses {
    /// The three /24 networks in the order they are used.
    public static let networks: [(UInt8, UInt8, UInt8)] = [(203, 0, 113), (198, 51, 100), (192, 0, 2)]
    /// Usable hosts per network (.1 to .254).
    public static let hostsPerNetwork = 254
    /// How many clients can have an address of their own.
    public static let capacity = Self.networks.count * Self.hostsPerNetwork

    /// The address of client `index` (0-based): 203.0.113.1, .2, … .254, then 198.51.100.1, …
    public static func address(of index: Int) -> String {
        precondition((0..<Self.capacity).contains(index), "client \(index) has no TEST-NET address")
        let (a, b, c) = Self.networks[index / Self.hostsPerNetwork]
        return "\(a).\(b).\(c).\(index % Self.hostsPerNetwork + 1)"
    }

    /// Whether `address` is one this type hands out.
    public static func isTestNet(_ address: String) -> Bool {
        let parts = address.split(separator: ".").compactMap { UInt8($0) }
        guard parts.count == 4, (1...254).contains(parts[3]) else { return false }
        return Self.networks.contains { $0 == (parts[0], parts[1], parts[2]) }
    }
}
