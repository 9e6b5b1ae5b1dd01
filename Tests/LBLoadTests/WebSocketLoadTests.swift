import GRDB
import LBBackend
import LBCore
import LBTesting
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import LBLoad
@testable import LBStore

/// WebSocket messages as the load (`-url ws://…`): against an in-process `lbctl backend -websocket`,
/// and the connection handler alone on an embedded channel.
@Suite("Load generator over WebSockets", .serialized)
struct WebSocketLoadTests {
    func configuration(_ address: HostPort, path: String = "/ws", clients: Int, pacing: LoadConfiguration.Pacing) -> LoadConfiguration {
        var configuration = LoadConfiguration(
            target: LoadConfiguration.Target(host: address.host, port: address.port, path: path),
            clients: clients,
            pacing: pacing
        )
        configuration.webSocket = true
        return configuration
    }

    @Test("open loop: a WebSocket per client, every message echoed and recorded, the asked rate kept")
    func openLoop() async throws {
        try await withSyntheticBackend({ $0.webSocketPath = "/ws" }) { address in
            var configuration = self.configuration(address, clients: 10, pacing: .openLoop(ratePerClient: 20, arrival: .constant))
            configuration.duration = .seconds(2)
            let database = try ResultsDatabase.inMemory()
            let recorder = try database.beginRun(RunInfo(kind: .loadgen))
            let report = try await LoadRun(configuration: configuration, sink: recorder).run()
            try recorder.finish(status: .completed, durationMicros: report.elapsed.nanoseconds / 1_000)

            // 10 clients × 20 messages a second × 2 s on a constant schedule.
            #expect(report.statistics.sent == 400)
            #expect(report.statistics.statuses == [101: 400])
            #expect(report.statistics.errors.isEmpty)
            #expect(report.statistics.peakConnections == 10, "one WebSocket per client")
            #expect(report.statistics.backends == ["b1": 400])
            #expect(abs(report.achievedRate / 200 - 1) < 0.01, "achieved \(report.achievedRate) req/s")
            #expect(report.text.contains("target ws://127.0.0.1:\(address.port)/ws"), "\(report.text)")
            #expect(report.text.contains("pool:      peak 10 of 10 connections"), "\(report.text)")
            #expect(report.json.transport == "websocket")
            let (rows, ips, echoed) = try database.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM requests")!,
                    try String.fetchAll(db, sql: "SELECT DISTINCT client_ip FROM requests"),
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM requests WHERE status = 101 AND bytes_in > 0 AND error IS NULL")!
                )
            }
            #expect(rows == 400 && echoed == 400)
            #expect(ips.count == 10 && ips.allSatisfy(ClientAddresses.contains))
            // Each WebSocket's opening and closing is an event of the run, with its backend and, at the
            // close, the messages echoed on it.
            let events = try database.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT kind, count(DISTINCT subject) AS clients, sum(json_extract(detail_json, '$.messages')) AS messages
                        FROM events WHERE kind LIKE 'ws_%' AND json_extract(detail_json, '$.backend') = 'b1' GROUP BY kind ORDER BY kind
                        """
                )
            }
            #expect(events.map { $0["kind"] as String } == ["ws_close", "ws_open"], "\(events)")
            #expect(events.map { $0["clients"] as Int } == [10, 10], "\(events)")
            #expect(events.first?["messages"] as Int? == 400, "\(events)")
        }
    }

    @Test("closed loop: -connections WebSockets, each sending its next message on the last echo, up to -requests")
    func closedLoop() async throws {
        try await withSyntheticBackend({ $0.webSocketPath = "/ws" }) { address in
            var configuration = self.configuration(address, clients: 4, pacing: .closedLoop(connections: 4))
            configuration.requests = 2_000
            configuration.body = Array(repeating: UInt8(ascii: "x"), count: 300)
            let report = try await LoadRun(configuration: configuration, sink: nil).run()
            #expect(report.statistics.completed == 2_000)
            #expect(report.statistics.statuses == [101: 2_000])
            #expect(report.statistics.peakConnections == 4)
            #expect(report.statistics.bytesIn == 2_000 * 300, "every message came back whole")
        }
    }

    @Test("a path the target does not switch is one clear error before the load counts anything")
    func refusedHandshake() async throws {
        try await withSyntheticBackend({ $0.webSocketPath = "/ws" }) { address in
            var configuration = self.configuration(address, path: "/", clients: 2, pacing: .openLoop(ratePerClient: 10, arrival: .constant))
            configuration.duration = .milliseconds(300)
            await #expect {
                _ = try await LoadRun(configuration: configuration, sink: nil).run()
            } throws: { error in
                "\(error)".contains("did not switch / to a WebSocket")
            }
        }
    }

    @Test("interrupting: the messages on the wire end as interrupted, and every message has its record")
    func interrupted() async throws {
        try await withSyntheticBackend({ $0.webSocketPath = "/ws" }) { address in
            var configuration = self.configuration(address, clients: 5, pacing: .openLoop(ratePerClient: 50, arrival: .constant))
            configuration.duration = .seconds(30)
            let database = try ResultsDatabase.inMemory()
            let recorder = try database.beginRun(RunInfo(kind: .loadgen))
            let run = LoadRun(configuration: configuration, sink: recorder)
            let stopper = Task {
                try await Task.sleep(for: .milliseconds(500))
                run.interrupt()
            }
            let report = try await run.run()
            try await stopper.value
            try recorder.finish(status: .interrupted, durationMicros: report.elapsed.nanoseconds / 1_000)
            #expect(report.interrupted)
            #expect(report.statistics.sent > 50 && report.statistics.sent < 1_000, "\(report.statistics.sent)")
            let rows = try database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM requests")! }
            #expect(rows == Int(report.requestsNumbered))
            #expect(report.statistics.completed == Int(report.requestsNumbered))
        }
    }

    // MARK: The handler alone

    /// A handler on an embedded channel, and the outcomes it reports.
    final class Harness {
        let channel = EmbeddedChannel()
        var outcomes: [LoadConnectionHandler.Outcome] = []
        var handler: WebSocketLoadHandler!

        init() throws {
            self.handler = WebSocketLoadHandler(client: 3, backend: "b2", maskKeys: SeededGenerator(seed: 7)) { outcome, _ in
                self.outcomes.append(outcome)
            }
            try self.channel.pipeline.syncOperations.addHandler(self.handler)
            try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func send(_ id: Int64, _ text: String, timeout: UInt64 = 1_000_000_000) -> Bool {
            self.handler.send(LoadRequest(id: id, client: 3, intendedNanos: 10), payload: ByteBuffer(string: text), sentNanos: 20, timeoutNanos: timeout)
        }

        func echo(_ text: String, fin: Bool = true, opcode: WebSocketOpcode = .text) throws {
            try self.channel.writeInbound(WebSocketFrame(fin: fin, opcode: opcode, data: ByteBuffer(string: text)))
        }
    }

    @Test("messages go out masked; pipelined echoes complete them in order, a fragmented one once whole")
    func handlerEchoes() throws {
        let harness = try Harness()
        #expect(harness.send(1, "1") && harness.send(2, "22"))
        let first = try #require(try harness.channel.readOutbound(as: WebSocketFrame.self))
        #expect(first.maskKey != nil && first.opcode == .text && first.fin)
        #expect(first.data == ByteBuffer(string: "1"), "the encoder masks the payload as it writes it")
        try harness.echo("1")
        try harness.echo("2", fin: false)
        #expect(harness.outcomes.count == 1)
        try harness.echo("2", opcode: .continuation)
        #expect(harness.outcomes.map(\.request.id) == [1, 2])
        #expect(harness.outcomes.allSatisfy { $0.status == 101 && $0.error == nil && $0.backend == "b2" && $0.reusable })
        #expect(harness.outcomes.map(\.bytesIn) == [1, 2])
        #expect(!harness.handler.isBroken && harness.handler.inFlightCount == 0)
    }

    @Test("an echo that is not the message it completes is a bad response, and the connection is done")
    func handlerMismatch() throws {
        let harness = try Harness()
        #expect(harness.send(1, "1") && harness.send(2, "2"))
        try harness.echo("2")
        #expect(harness.outcomes.map(\.error) == [.badResponse, .badResponse])
        #expect(harness.handler.isBroken)
        #expect(!harness.send(3, "3"), "a broken connection takes no more")
    }

    @Test("the oldest message overdue fails every message on the wire and closes the connection")
    func handlerTimeout() throws {
        let harness = try Harness()
        #expect(harness.send(1, "1", timeout: 100) && harness.send(2, "2", timeout: 100))
        harness.handler.expireIfOverdue(now: 119)
        #expect(harness.outcomes.isEmpty, "due at 20 + 100")
        harness.handler.expireIfOverdue(now: 120)
        #expect(harness.outcomes.map(\.error) == [.timedOut, .timedOut])
        #expect(harness.handler.isBroken)
    }

    @Test("a ping gets its pong; a close from the target ends what is on the wire as closed")
    func handlerControlFrames() throws {
        let harness = try Harness()
        #expect(harness.send(1, "1"))
        _ = try harness.channel.readOutbound(as: WebSocketFrame.self)
        try harness.echo("are you there", opcode: .ping)
        let pong = try #require(try harness.channel.readOutbound(as: WebSocketFrame.self))
        #expect(pong.opcode == .pong && pong.data == ByteBuffer(string: "are you there") && pong.maskKey != nil)
        try harness.echo("", opcode: .connectionClose)
        #expect(harness.outcomes.map(\.error) == [.connectionClosed])
    }
}
