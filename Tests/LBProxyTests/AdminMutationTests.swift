import Foundation
import LBConfig
import LBCore
import LBTesting
import Testing

@testable import LBProxy

/// The admin API under calls mutated at random (fixed seeds): every one is answered, with a status
/// below 500 and, when JSON, a JSON object, and the proxy's backends stay in a state it can serve from.
@Suite("Admin API under random mutation")
struct AdminMutationTests {
    /// Calls the API answers with success, to mutate.
    static let calls: [(method: String, target: String, body: String)] = [
        ("GET", "/backends?service=web", ""),
        ("POST", "/backends", #"{"service": "web", "name": "b9", "address": "127.0.0.1:9009", "weight": 1}"#),
        ("PUT", "/backends/b1/weight", #"{"weight": 3}"#),
        ("POST", "/backends/b2/drain", ""),
        ("POST", "/backends/b2/resume?service=web&x=", ""),
        ("DELETE", "/backends/b9", ""),
        ("POST", "/register", #"{"address": "http://127.0.0.1:9001/", "weight": 2}"#),
        ("GET", "/metrics", ""),
        ("GET", "/health", ""),
    ]

    @Test("mutated targets and bodies", arguments: 0..<2)
    func calls(seed: UInt64) async throws {
        var generator = SeededGenerator(seed: 0xAD31_0000 + seed)
        let service = Service(
            name: "web",
            algorithm: .weightedRoundRobin,
            backends: ["b1", "b2", "b3"].enumerated().map { BackendSpec(name: $1, address: HostPort(host: "127.0.0.1", port: 9001 + $0)) }
        )
        let runtime = ProxyRuntime(configuration: ProxyConfiguration(listen: HostPort(host: "127.0.0.1", port: 0), services: [service]))
        // Nothing is dialled: every address counts as not accepting connections.
        let api = AdminAPI(runtime: runtime, token: nil) { _ in false }
        var statuses: [Int: Int] = [:]
        for round in 0..<3_000 {
            let call = Self.calls[round % Self.calls.count]
            var targetBytes = Array(call.target.utf8)
            var body = Array(call.body.utf8)
            switch generator.index(below: 3) {
            case 0: targetBytes = Mutation.mutated(targetBytes, using: &generator)
            case 1: body = Mutation.mutated(body, using: &generator)
            default:
                targetBytes = Mutation.mutated(targetBytes, using: &generator)
                body = Mutation.mutated(body, using: &generator)
            }
            let method = call.method
            let target = String(decoding: targetBytes, as: UTF8.self)
            let response = await api.handle(AdminAPI.Request(method: method, target: target, body: body))
            statuses[response.status, default: 0] += 1
            #expect((200..<500).contains(response.status), "\(method) \(String(reflecting: target)) \(String(reflecting: String(decoding: body, as: UTF8.self)))")
            if response.contentType == "application/json" {
                #expect((try? JSONSerialization.jsonObject(with: Data(response.body))) is [String: Any], "\(method) \(String(reflecting: target))")
            }
        }
        // The service can still pick: every weight is one a picker takes, and there is a backend to pick.
        let backends = runtime.services[0].backends
        #expect(backends.allSatisfy { $0.spec.weight >= 0 }, "\(backends.map(\.spec))")
        #expect((statuses[200] ?? 0) > 300 && (statuses[400] ?? 0) > 200 && (statuses[404] ?? 0) > 300, "\(statuses)")
    }
}
