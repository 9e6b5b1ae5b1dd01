import Foundation
import LBBackend
import LBCore
import LBTesting
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Live tests: a backend on a free loopback port, requests over real sockets.
@Suite("Synthetic backend on loopback", .serialized)
struct SyntheticBackendTests {
    /// Starts a backend with `configure` applied, runs `body` with its base URL, and stops it.
    /// A backend on an ephemeral loopback port, for `body` to reach at the URL it is given.
    func withBackend(
        name: String = "b1",
        _ configure: (inout BackendConfiguration) -> Void = { _ in },
        _ body: (URL) async throws -> Void
    ) async throws {
        try await withSyntheticBackend(name: name, configure) { address in
            try await body(URL(string: "http://127.0.0.1:\(address.port)")!)
        }
    }

    let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 64
        configuration.timeoutIntervalForRequest = 10
        return URLSession(configuration: configuration)
    }()

    func get(_ url: URL) async throws -> (status: Int, backend: String?, body: Data) {
        let (data, response) = try await self.session.data(from: url)
        let http = try #require(response as? HTTPURLResponse)
        return (http.statusCode, http.value(forHTTPHeaderField: "X-LBLab-Backend"), data)
    }

    func post(_ url: URL, json: String) async throws -> (status: Int, body: String) {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = Data(json.utf8)
        let (data, response) = try await self.session.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    @Test("answers with its name in X-LBLab-Backend and a body of the configured size")
    func answers() async throws {
        try await withBackend(name: "alpha", { $0.responseBytes = 1_000 }) { base in
            let answer = try await get(base.appendingPathComponent("anything"))
            #expect(answer.status == 200 && answer.backend == "alpha" && answer.body.count == 1_000)
        }
    }

    @Test("with a WebSocket path: the handshake is answered and names the backend, messages come back, a ping gets its pong, a close its close")
    func webSocket() async throws {
        try await withSyntheticBackend(name: "ws1", { $0.webSocketPath = "/ws" }) { address in
            let client = try RawConnection(port: address.port)
            try client.send(Array(
                ("GET /ws?room=1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8
            ))
            let head = try client.readHead()
            let lines = Set(head.split(separator: "\r\n").map { $0.lowercased() })
            #expect(head.hasPrefix("HTTP/1.1 101 ") && lines.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "\(head)")
            #expect(lines.contains("x-lblab-backend: ws1"), "\(head)")
            try client.send(WebSocketWire.maskedFrame(opcode: 0x1, Array("hello".utf8)))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x1, payload: Array("hello".utf8)))
            let large = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try client.send(WebSocketWire.maskedFrame(opcode: 0x2, large))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x2, payload: large))
            try client.send(WebSocketWire.maskedFrame(opcode: 0x9, [1, 2]))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0xA, payload: [1, 2]))
            try client.send(WebSocketWire.maskedFrame(opcode: 0x8, [0x03, 0xE8]))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x8, payload: [0x03, 0xE8]))
            #expect(try client.readsEnd())
            // Other paths are plain requests, the handshake's included.
            let url = URL(string: "http://127.0.0.1:\(address.port)/other")!
            let answer = try await get(url)
            #expect(answer.status == 200 && answer.backend == "ws1")
        }
    }

    @Test("takes the configured latency")
    func latency() async throws {
        try await withBackend({ $0.settings.latency = .fixed(.milliseconds(120)) }) { base in
            let clock = ContinuousClock()
            let start = clock.now
            _ = try await get(base)
            let elapsed = clock.now - start
            #expect(elapsed >= .milliseconds(120) && elapsed < .seconds(2), "took \(elapsed)")
        }
    }

    @Test("fails the configured share of requests with 500")
    func errors() async throws {
        try await withBackend({ $0.settings.errorRate = 0.3; $0.seed = 4 }) { base in
            var failures = 0
            for _ in 0..<400 where try await get(base).status == 500 { failures += 1 }
            // Binomial(400, 0.3): σ ≈ 9.2; ±5σ.
            #expect(abs(failures - 120) <= 46, "\(failures) of 400 failed")
        }
    }

    @Test("at capacity 1, concurrent requests wait their turn: five 100 ms requests take 500 ms")
    func capacityQueues() async throws {
        try await withBackend({ $0.settings.latency = .fixed(.milliseconds(100)); $0.capacity = 1 }) { base in
            let clock = ContinuousClock()
            let start = clock.now
            let finishes = try await withThrowingTaskGroup(of: Duration.self) { group in
                for _ in 0..<5 {
                    group.addTask {
                        _ = try await self.get(base)
                        return clock.now - start
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }.sorted()
            }
            // Served one after another: the k-th finishes after k × 100 ms.
            for (k, finish) in finishes.enumerated() {
                #expect(finish >= .milliseconds(100 * (k + 1)), "request \(k + 1) finished at \(finish)")
            }
            #expect(finishes.last! < .milliseconds(1_500))
        }
    }

    @Test("refuses with 503 when the queue is full")
    func queueFull() async throws {
        try await withBackend({ $0.settings.latency = .fixed(.milliseconds(300)); $0.capacity = 1; $0.queueLimit = 0 }) { base in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<3 { group.addTask { try await self.get(base).status } }
                return try await group.reduce(into: []) { $0.append($1) }.sorted()
            }
            #expect(statuses == [200, 503, 503])
        }
    }

    @Test("the control endpoint changes latency, errors and health while it runs")
    func control() async throws {
        try await withBackend { base in
            let health = base.appendingPathComponent("health")
            #expect(try await get(health).status == 200)
            let control = URL(string: base.absoluteString + BackendConfiguration.controlPath)!
            let changed = try await post(control, json: #"{"healthy": false, "errors": 1, "latency": "exp(2ms)"}"#)
            #expect(changed.status == 200)
            #expect(changed.body.contains(#""healthy":false"#) && changed.body.contains(#""latency":"exponential(2ms)""#))
            #expect(try await get(health).status == 503)
            #expect(try await get(base).status == 500)
            let refused = try await post(control, json: #"{"errors": 2}"#)
            #expect(refused.status == 400 && refused.body.contains("errors: must be between 0 and 1"))
            let malformed = try await post(control, json: #"{"latency": "fast"}"#)
            #expect(malformed.status == 400 && malformed.body.contains("latency"))
            _ = try await post(control, json: #"{"healthy": true, "errors": 0}"#)
            #expect(try await get(health).status == 200)
            #expect(try await get(base).status == 200)
        }
    }
}
