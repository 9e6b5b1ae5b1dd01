import Foundation
import Testing

@testable import LBHarness

@Suite("free ports")
struct FreePortTests {
    @Test("ports for children come from outside the ephemeral range, each once")
    func outsideEphemeralRange() throws {
        let text = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        let ports = try (0..<300).map { _ in try FreePort.next() }
        #expect(Set(ports).count == 300)
        #expect(ports.allSatisfy { $0 < bounds[0] || $0 > bounds[1] }, "\(bounds)")
    }
}
