import LBCore
import LBTesting
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import LBLoad

/// The closed loop (on Linux, ``ClosedLoopEngine``, which reads and writes its sockets itself) against a
/// target that answers as a script says: responses in pieces, closes, resets, silence, large bodies.
@Suite("Closed loop against a scripted target", .serialized)
struct ClosedLoopEngineTests {
    /// What the target does with a request.
    enum Answer: Sendable {
        /// Writes `pieces` one after another, `pause` apart, then closes the connection if `close`.
        case respond([String], pause: TimeAmount = .zero, close: Bool = false)
        /// Never answers.
        case silent
        /// Closes the connection and stops listening.
        case stopListening
    }

    /// What the target saw.
    struct Seen {
        var connections = 0
        var requests = 0
        var bodyBytes: [Int] = []
        /// Every request head, in the order they came.
        var heads: [String] = []
    }

    /// What the target saw, shared by its connections.
    final class Tally: Sendable {
        let seen = Mutex(Seen())
    }

    /// Answers every complete request (head and `Content-Length` body) as `script` says for its number
    /// (from 0, counted over every connection).
    final class ScriptedTarget: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let script: @Sendable (Int) -> Answer
        let tally: Tally
        private var pending = ByteBuffer()

        init(script: @escaping @Sendable (Int) -> Answer, tally: Tally) {
            self.script = script
            self.tally = tally
        }

        func channelActive(context: ChannelHandlerContext) {
            self.tally.seen.withLock { $0.connections += 1 }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = self.unwrapInboundIn(data)
            self.pending.writeBuffer(&bytes)
            while let view = self.pending.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) {
                let headLength = view.upperBound - self.pending.readerIndex
                let head = self.pending.getString(at: self.pending.readerIndex, length: headLength)!
                let lengthLine = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                let length = lengthLine.flatMap { Int(String($0.dropFirst("content-length:".count)).trimmingPrefix(" ")) } ?? 0
                guard self.pending.readableBytes >= headLength + length else { return }
                self.pending.moveReaderIndex(forwardBy: headLength + length)
                self.pending.discardReadBytes()
                let number = self.tally.seen.withLock { seen in
                    seen.bodyBytes.append(length)
                    seen.heads.append(head)
                    seen.requests += 1
                    return seen.requests - 1
                }
                self.answer(self.script(number), context: context)
            }
        }

        private func answer(_ answer: Answer, context: ChannelHandlerContext) {
            if case .stopListening = answer {
                context.channel.parent?.close(promise: nil)
                context.close(promise: nil)
            }
            guard case .respond(let pieces, let pause, let close) = answer else { return }
            let loop = context.eventLoop.assumeIsolated()
            for (index, piece) in pieces.enumerated() {
                loop.scheduleTask(in: pause * Int64(index)) {
                    context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: piece)), promise: nil)
                }
            }
            if close {
                loop.scheduleTask(in: pause * Int64(pieces.count)) { context.close(promise: nil) }
            }
        }
    }

    /// Runs `body` with a scripted target on loopback; returns what the target saw.
    func withScriptedTarget(
        _ script: @escaping @Sendable (Int) -> Answer,
        _ body: (LoadConfiguration.Target) async throws -> Void
    ) async throws -> Seen {
        let tally = Tally()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ScriptedTarget(script: script, tally: tally))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        do {
            try await body(LoadConfiguration.Target(host: "127.0.0.1", port: server.localAddress!.port!, path: "/"))
        } catch {
            try? await server.close()
            throw error
        }
        try? await server.close()  // already closed by a script that stopped listening
        return tally.seen.withLock { $0 }
    }

    func closedLoop(_ target: LoadConfiguration.Target, connections: Int, requests: Int) -> LoadConfiguration {
        var configuration = LoadConfiguration(target: target, clients: connections, pacing: .closedLoop(connections: connections))
        configuration.duration = .seconds(20)  // a cap: the requests end the run
        configuration.requests = requests
        return configuration
    }

    @Test("the engine carries the closed loop where it runs, the event loops everything else")
    func engineChoice() {
        let target = LoadConfiguration.Target(host: "127.0.0.1", port: 1, path: "/")
        var closed = LoadConfiguration(target: target, clients: 1, pacing: .closedLoop(connections: 1))
        let open = LoadConfiguration(target: target, clients: 1, pacing: .openLoop(ratePerClient: 1, arrival: .constant))
        #if os(Linux)
        #expect(LoadRun.usesClosedLoopEngine(closed))
        #else
        #expect(!LoadRun.usesClosedLoopEngine(closed))
        #endif
        #expect(!LoadRun.usesClosedLoopEngine(open))
        closed.webSocket = true
        #expect(!LoadRun.usesClosedLoopEngine(closed))
    }

    @Test("responses in pieces, chunked, delimited by the close, or closing: each ends as the target meant, and the loop goes on new connections")
    func responsesInPieces() async throws {
        let answers: [Answer] = [
            .respond(["HTTP/1.1 200 OK\r\nContent-", "Length: 5\r\nX-LBLab-Backend: b1\r\n", "\r\nhel", "lo"], pause: .milliseconds(2)),
            .respond(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "lo\r\n3\r\nabc\r\n0\r\n\r\n"], pause: .milliseconds(2)),
            .respond(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"], close: true),
            .respond(["HTTP/1.1 201 Created\r\n\r\nuntil", " the close"], pause: .milliseconds(2), close: true),
        ]
        let seen = try await withScriptedTarget({ answers[$0 % answers.count] }) { target in
            let sink = InMemoryRecordSink()
            let report = try await LoadRun(configuration: closedLoop(target, connections: 3, requests: 80), sink: sink).run()
            #expect(report.statistics.sent == 80)
            #expect(report.statistics.completed == 80)
            #expect(report.statistics.errors.isEmpty, "\(report.statistics.errors)")
            #expect(report.statistics.statuses == [200: 60, 201: 20])
            let records = sink.snapshot.requests
            #expect(records.count == 80)
            // Body bytes as each kind of response framed them: 5, 8 (two chunks), 2 and 15.
            let bytesIn: Int64 = records.reduce(0) { $0 + $1.bytesIn }
            #expect(bytesIn == 20 * (5 + 8 + 2 + 15))
            #expect(records.filter { $0.backendID != nil }.count == 20)
            #expect(report.statistics.peakConnections <= 3)
        }
        // Every close took a connection and the loop opened another: the three it started with, and one
        // for each of the 40 responses that closed theirs (the last few may have come after the end).
        #expect(seen.connections >= 3 + 40 - 3 && seen.connections <= 3 + 40, "\(seen.connections) connections")
        #expect(seen.requests == 80)
    }

    @Test("-threads 3: the connections and the requests shared among three loops, every request once")
    func threads() async throws {
        let seen = try await withScriptedTarget({ _ in .respond(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]) }) { target in
            var configuration = closedLoop(target, connections: 7, requests: 901)
            configuration.threads = 3
            let sink = InMemoryRecordSink()
            let report = try await LoadRun(configuration: configuration, sink: sink).run()
            #expect(report.statistics.statuses == [200: 901])
            #expect(report.statistics.peakConnections == 7)
            let records = sink.snapshot.requests
            #expect(Set(records.map(\.id)).count == 901)
            // Seven connections, three loops: clients 0 to 6, each a connection of its own.
            #expect(Set(records.map(\.clientID)).count == 7)
        }
        #expect(seen.connections == 1 + 7)  // the check before the load, and the loops' seven
    }

    @Test("a target named by a host name: the loop connects where the check before the load did")
    func hostName() async throws {
        _ = try await withScriptedTarget({ _ in .respond(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]) }) { target in
            var named = target
            named.host = "localhost"
            let report = try await LoadRun(configuration: closedLoop(named, connections: 2, requests: 20), sink: nil).run()
            #expect(report.statistics.statuses == [200: 20])
        }
    }

    @Test("each request carries its own id, its client's TEST-NET address and a key, as its record says")
    func requestHeads() async throws {
        let sink = InMemoryRecordSink()
        let seen = try await withScriptedTarget({ _ in .respond(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]) }) { target in
            var configuration = closedLoop(target, connections: 3, requests: 60)
            configuration.keys = ZipfKeys(count: 5, exponent: 1)
            configuration.headers = [("X-Test", "1")]
            let report = try await LoadRun(configuration: configuration, sink: sink).run()
            #expect(report.statistics.statuses == [200: 60])
        }
        func field(_ name: String, _ head: String) -> String? {
            head.split(separator: "\r\n").first { $0.hasPrefix("\(name): ") }.map { String($0.dropFirst(name.count + 2)) }
        }
        let records = Dictionary(uniqueKeysWithValues: sink.snapshot.requests.map { ($0.id, $0) })
        #expect(seen.heads.count == 60 && records.count == 60)
        for head in seen.heads {
            #expect(head.hasPrefix("GET / HTTP/1.1\r\nHost: 127.0.0.1:"), "\(head)")
            #expect(field("X-Test", head) == "1")
            guard let id = field("X-Request-Id", head).flatMap({ Int64($0) }), let record = records[id] else {
                Issue.record("no record for the request \(head)")
                continue
            }
            #expect(field("X-Forwarded-For", head) == record.clientIP)
            #expect(ClientAddresses.contains(record.clientIP))
            #expect(field("X-LBLab-Key", head).flatMap { Int($0) } == record.key)
            #expect(record.key.map { (0..<5).contains($0) } == true)
        }
        #expect(Set(seen.heads.compactMap { field("X-Request-Id", $0) }).count == 60)
    }

    @Test("a request body larger than the socket takes at once goes out whole")
    func largeBody() async throws {
        let size = 8 << 20
        let seen = try await withScriptedTarget({ _ in .respond(["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]) }) { target in
            var configuration = closedLoop(target, connections: 2, requests: 6)
            configuration.method = "POST"
            configuration.body = [UInt8](repeating: 0x61, count: size)
            let report = try await LoadRun(configuration: configuration, sink: nil).run()
            #expect(report.statistics.statuses == [200: 6])
            #expect(report.statistics.errors.isEmpty)
        }
        #expect(seen.bodyBytes == Array(repeating: size, count: 6))
    }

    @Test("a response cut short by a close ends as closed, and the loop goes on")
    func cutShort() async throws {
        let seen = try await withScriptedTarget({ number in
            number % 4 == 3
                ? .respond(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], close: true)
                : .respond(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
        }) { target in
            let sink = InMemoryRecordSink()
            let report = try await LoadRun(configuration: closedLoop(target, connections: 2, requests: 40), sink: sink).run()
            #expect(report.statistics.completed == 40)
            #expect(report.statistics.statuses[200] == 30)
            #expect(report.statistics.errors == [.connectionClosed: 10])
            let cut = sink.snapshot.requests.filter { $0.error == .connectionClosed }
            #expect(cut.count == 10 && cut.allSatisfy { $0.bytesIn == 5 && $0.status == nil })
        }
        #expect(seen.requests == 40)
    }

    @Test("a silent target: every request times out between 1 and 1.1 timeouts after it was sent")
    func silent() async throws {
        _ = try await withScriptedTarget({ _ in .silent }) { target in
            var configuration = closedLoop(target, connections: 2, requests: 6)
            configuration.timeout = .milliseconds(200)
            let sink = InMemoryRecordSink()
            let report = try await LoadRun(configuration: configuration, sink: sink).run()
            #expect(report.statistics.errors == [.timedOut: 6])
            for record in sink.snapshot.requests {
                let waited = record.doneMicros - record.sentMicros
                #expect(record.error == .timedOut && waited >= 200_000 && waited < 260_000, "timed out after \(waited) µs")
            }
        }
    }

    @Test("interrupting a closed loop ends what is in flight as interrupted, and keeps a record of every request")
    func interrupt() async throws {
        _ = try await withScriptedTarget({ _ in
            .respond(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "ok"], pause: .milliseconds(100))
        }) { target in
            var configuration = closedLoop(target, connections: 4, requests: 1_000_000)
            configuration.duration = .seconds(30)
            let sink = InMemoryRecordSink()
            let run = LoadRun(configuration: configuration, sink: sink)
            Task {
                try await Task.sleep(for: .milliseconds(550))
                run.interrupt()
            }
            let clock = ContinuousClock()
            let start = clock.now
            let report = try await run.run()
            #expect(clock.now - start < .seconds(2))
            #expect(report.interrupted)
            let records = sink.snapshot.requests
            #expect(records.count == report.statistics.completed)
            // The four on the wire end as interrupted; before them, each connection completed a response
            // every 100 ms at most: 20 at most in the 530 ms from t0, fewer on a busy machine.
            #expect(records.filter { $0.error == .interrupted }.count == 4)
            #expect(report.statistics.statuses[200].map { (4...20).contains($0) } == true, "\(report.statistics.statuses)")
        }
    }

    @Test("a target that stops listening: what was on the wire ends as closed, and connects fail, counted, every 10 ms to the end")
    func targetGone() async throws {
        _ = try await withScriptedTarget({ number in
            number < 10 ? .respond(["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]) : .stopListening
        }) { target in
            var configuration = closedLoop(target, connections: 2, requests: 1_000)
            configuration.duration = .milliseconds(300)
            let report = try await LoadRun(configuration: configuration, sink: nil).run()
            #expect(report.statistics.statuses == [200: 10])
            // The two on the wire, and any sent on a connection the kernel took for the listener before
            // it closed (and reset with it).
            let closed = report.statistics.errors[.connectionClosed] ?? 0
            #expect(closed >= 2 && closed <= 4, "\(report.statistics.errors)")
            // Two connections, each tried again every 10 ms for the rest of the 300 ms: about 60.
            let refused = report.statistics.errors[.connectFailed] ?? 0
            #expect(refused >= 20 && refused <= 70, "\(report.statistics.errors)")
        }
    }
}
