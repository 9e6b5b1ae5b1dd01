import Foundation
import LBConfig
import LBCore
import LBLoad
import LBTesting
import Testing

@testable import LBProxy

/// What the proxy records: a row per request, events for changes, and the access log.
@Suite("Proxy records", .serialized)
struct ProxyRecordingTests {
    @Test("a row per request with the client's request id, backend, status and attempts; a retried one names where it failed; an access-log line each")
    func rows() async throws {
        let deadPort = try await withSyntheticBackend { address in address.port }
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-access-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: logPath) }
        try await withSyntheticBackend(name: "b1") { b1 in
            let sink = InMemoryRecordSink()
            let recorder = try ProxyRecorder(sink: sink, accessLogPath: logPath)
            let service = Service(
                name: "web",
                algorithm: .roundRobin,
                backends: [BackendSpec(name: "b1", address: b1), BackendSpec(name: "dead", address: HostPort(host: "127.0.0.1", port: deadPort))]
            )
            let configuration = ProxyConfiguration.onLoopback([service], threads: 1)
            let server = try ProxyServer(configuration: configuration, recorder: recorder)
            let port = try await server.start()[0].port!
            var load = LoadConfiguration(target: .init(host: "127.0.0.1", port: port, path: "/x"), clients: 2, pacing: .closedLoop(connections: 2))
            load.requests = 100
            load.timeout = .seconds(10)
            let loadSink = InMemoryRecordSink()
            let statistics = try await LoadRun(configuration: load, sink: loadSink).run().statistics
            #expect(statistics.statuses == [200: 100])
            let api = AdminAPI(runtime: server.runtime, token: nil) { _ in true }
            _ = await api.handle(AdminAPI.Request(method: "POST", target: "/backends/b1/drain"))
            #expect(await server.shutdown(grace: .seconds(5)) == 0)

            let contents = sink.snapshot
            let rows = contents.proxyRequests
            #expect(rows.count == 100)
            let b1ID = try #require(contents.backends.first { $0.name == "b1" }?.id)
            let deadID = contents.backends.first { $0.name == "dead" }?.id
            #expect(rows.allSatisfy { $0.status == 200 && $0.backendID == b1ID && $0.clientIP != nil })
            #expect(Set(rows.map(\.requestID)) == Set(loadSink.snapshot.requests.map(\.id)), "the load generator's ids, as sent")
            // Round robin offers the dead backend every other pick: those requests were requeued once.
            let retried = rows.filter { $0.attempts == 2 }
            #expect(!retried.isEmpty && retried.allSatisfy { $0.retriedFrom == deadID && deadID != nil })
            #expect(rows.filter { $0.attempts == 1 }.allSatisfy { $0.retriedFrom == nil })
            #expect(rows.allSatisfy { row in
                guard let picked = row.pickedMicros, let start = row.upstreamStartMicros, let done = row.upstreamDoneMicros else { return false }
                return row.receivedMicros <= picked && picked <= start && start <= done
            })
            #expect(contents.events.contains { $0.kind == "drain" && $0.subject == "b1" })

            let lines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 100)
            let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(first["method"] as? String == "GET" && first["target"] as? String == "/x" && first["service"] as? String == "web")
            #expect(first["backend"] as? String == "b1" && first["status"] as? Int == 200 && first["client"] as? String != nil)
        }
    }

    @Test("a request that asks to close is the connection's last: one behind it on the same connection never reaches a backend")
    func closeEndsPipeline() async throws {
        try await withSyntheticBackend(name: "b1") { b1 in
            let sink = InMemoryRecordSink()
            let configuration = ProxyConfiguration.onLoopback([Service(name: "web", backends: [BackendSpec(name: "b1", address: b1)])], threads: 1)
            let server = try ProxyServer(configuration: configuration, recorder: try ProxyRecorder(sink: sink, accessLogPath: nil))
            let port = try await server.start()[0].port!
            let request = "GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
            let text = try rawExchange(port, request, responses: 2)
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 2, "one answer, then the close: \(text)")
            #expect(await server.shutdown(grace: .seconds(5)) == 0)
            #expect(sink.snapshot.proxyRequests.map(\.status) == [200], "\(sink.snapshot.proxyRequests)")
        }
    }
}
