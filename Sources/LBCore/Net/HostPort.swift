/// A `host:port` pair as flags and configuration files write addresses: `127.0.0.1:9001`,
/// `[::1]:9001`, `localhost:8080`, or `:9001` (loopback).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// The host: an IPv4 or IPv6 literal (without brackets) or a name.
    public var host: String
    /// The TCP port, 0 for "any free port".
    public var port: Int

    /// An address of `host` and `port`.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Reads `host:port`; a missing host means `127.0.0.1`, since LBLab listens on loopback unless told
    /// otherwise.
    public init(parsing text: String) throws(MalformedValue) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw MalformedValue(text: text, problem: "is not host:port; an IPv6 address is written [::1]:9001")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw MalformedValue(text: text, problem: "needs a port, e.g. 127.0.0.1:9001")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            guard !hostPart.contains(":") else {
                throw MalformedValue(text: text, problem: "has an IPv6 address without brackets; write it as [::1]:9001")
            }
        }
        guard let port = Int(portPart), (0...65_535).contains(port) else {
            throw MalformedValue(text: text, problem: "has a bad port; use a number from 0 to 65535")
        }
        self.host = hostPart.isEmpty ? "127.0.0.1" : String(hostPart)
        self.port = port
    }

    /// Whether the host is a loopback address (127.0.0.0/8, `::1`, `localhost`).
    public var isLoopback: Bool {
        self.host == "localhost" || self.host == "::1" || self.host.hasPrefix("127.")
    }

    /// The address as it is written, with brackets around an IPv6 host.
    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }
}
