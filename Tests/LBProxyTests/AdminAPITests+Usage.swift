import Foundation
import LBConfig
import LBCore
import LBTesting
import Testing

@testable import LBProxy

extension AdminAPITests {
    @Test("PUT /backends/NAME/usage takes a CPU or memory share (the higher counts), shows it in GET /backends, and refuses anything else")
    func usageFigures() async {
        let runtime = self.runtime()
        let api = AdminAPI(runtime: runtime, token: nil) { _ in true }
        let state = runtime.services[0].backend(named: "b1")!.state
        #expect(state.lastResourceUsage == nil)
        var (status, object) = await call(api, "PUT", "/backends/b1/usage", #"{"cpu": 0.8, "memory": 0.3}"#)
        #expect(status == 200 && state.lastResourceUsage?.usage == 0.8)
        let shown = (object["backend"] as? [String: Any])
        #expect(shown?["usage"] as? Double == 0.8 && (shown?["usageAgeSeconds"] as? Double).map { $0 >= 0 && $0 < 5 } == true, "\(object)")
        (status, _) = await call(api, "PUT", "/backends/b1/usage", #"{"memory": 0.45}"#)
        #expect(status == 200 && state.lastResourceUsage?.usage == 0.45)
        (status, object) = await call(api, "GET", "/backends")
        let listed = ((object["services"] as? [[String: Any]])?.first?["backends"] as? [[String: Any]]) ?? []
        #expect(listed.map { $0["usage"] as? Double } == [0.45, nil], "b2 has no figure: \(listed)")

        for (body, wanted, message) in [
            ("{}", 400, "give \"cpu\" or \"memory\""),
            (#"{"cpu": "high"}"#, 400, "must be a number"),
            (#"{"cpu": true}"#, 400, "must be a number"),
            (#"{"cpu": -0.1}"#, 400, "must be a number"),
            (#"{"memory": 101}"#, 400, "must be a number"),
            (#"{"cpu": 0.5, "disk": 0.1}"#, 403, "unknown field \"disk\""),
            ("", 400, "body is missing"),
        ] {
            (status, object) = await call(api, "PUT", "/backends/b1/usage", body)
            #expect(status == wanted && (object["error"] as? String)?.contains(message) == true, "\(body): \(status) \(object)")
        }
        #expect(state.lastResourceUsage?.usage == 0.45, "a refused figure changes nothing")
        (status, _) = await call(api, "POST", "/backends/b1/usage", #"{"cpu": 0.5}"#)
        #expect(status == 405)
        (status, _) = await call(api, "PUT", "/backends/b9/usage", #"{"cpu": 0.5}"#)
        #expect(status == 404)
    }

    @Test("on a running proxy, least-resources follows the figures sent to the admin API, and without any balances by requests in flight")
    func leastResourcesFollowsFigures() async throws {
        try await withSyntheticBackend(name: "b1") { b1 in
            try await withSyntheticBackend(name: "b2") { b2 in
                let service = Service(
                    name: "web",
                    algorithm: .leastResources,
                    backends: [BackendSpec(name: "b1", address: b1), BackendSpec(name: "b2", address: b2)]
                )
                let server = try ProxyServer(configuration: ProxyConfiguration.onLoopback([service], threads: 1))
                let proxy = HostPort(host: "127.0.0.1", port: try await server.start()[0].port!)
                let adminAddress = HostPort(host: "127.0.0.1", port: server.adminAddress!.port!)

                // No figures: both count as fully used, and 4 connections' requests split by what is in flight.
                var served = try await load(proxy, requests: 200)
                #expect(served["b1", default: 0] > 40 && served["b2", default: 0] > 40, "\(served)")

                // b1 at 90% of its CPU, b2 at 10%: with at most 4 requests in flight, b2's cost (0.1 × 4)
                // stays below b1's (0.9 × 1), so b2 takes them all.
                #expect(try await admin(adminAddress, "PUT", "/backends/b1/usage", #"{"cpu": 0.9}"#).0 == 200)
                #expect(try await admin(adminAddress, "PUT", "/backends/b2/usage", #"{"cpu": 0.1}"#).0 == 200)
                served = try await load(proxy, requests: 200)
                #expect(served == ["b2": 200], "\(served)")

                // The figures turn round, and so do the requests.
                #expect(try await admin(adminAddress, "PUT", "/backends/b1/usage", #"{"memory": 0.05}"#).0 == 200)
                #expect(try await admin(adminAddress, "PUT", "/backends/b2/usage", #"{"cpu": 0.95}"#).0 == 200)
                served = try await load(proxy, requests: 200)
                #expect(served == ["b1": 200], "\(served)")
                #expect(await server.shutdown(grace: .seconds(5)) == 0)
            }
        }
    }
}
