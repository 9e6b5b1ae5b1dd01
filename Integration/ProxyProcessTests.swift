import Foundation
import LBTesting
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

#if canImport(Glibc)
import Glibc
#endif

/// `lbctl proxy` as a process: checking configurations, and forwarding between real processes.
@Suite("lbctl proxy", .serialized)
struct ProxyProcessTests {
    @Test("--check accepts the example config.yml and exits 0")
    func checkExample() async throws {
        let config = repositoryRoot.appendingPathComponent("config.yml").path
        let result = await (try ChildProcess("lbctl", ["proxy", "--check", "--config", config])).wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("valid: 2 services, 6 backends"))
    }

    @Test("a flag for use without a file, given beside --config, is refused by name", arguments: [["-listen", "127.0.0.1:8181"], ["-backend", "127.0.0.1:9001"], ["-algo", "LC"]])
    func flagBesideConfig(flag: [String]) async throws {
        let config = repositoryRoot.appendingPathComponent("config.yml").path
        let result = await (try ChildProcess("lbctl", ["proxy", "--check", "--config", config] + flag)).wait()
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("\(flag[0]): give it in the configuration file, not beside --config"), "\(result.stderr)")
    }

    @Test("--check of quick flags whose values are mutated at random: each run ends by itself, and a refusal names the flag")
    func mutatedFlags() async throws {
        let flags = [
            ("-listen", "127.0.0.1:8080"), ("-backend", "127.0.0.1:9001"), ("-backend", "[::1]:9002"), ("-algo", "LC"),
            ("-t", "5"), ("-threads", "2"), ("-admin", "127.0.0.1:9900"),
        ]
        let refused = try await runMutatingFlags("lbctl", ["proxy", "--check"], flags, rounds: 70, seed: 0xF1A7)
        #expect(refused > 20 && refused < 65, "\(refused) of 70 refused")
    }

    @Test("-yield-interval takes a Go duration from 0s to 1s; anything else is refused by name", arguments: [
        ("0s", true), ("250us", true), ("1s", true), ("1.5s", false), ("5", false), ("soon", false),
    ])
    func yieldIntervalFlag(value: String, valid: Bool) async throws {
        let result = await (try ChildProcess("lbctl", ["proxy", "--check", "-backend", "127.0.0.1:9001", "-yield-interval", value])).wait()
        if valid {
            #expect(result.status == 0, "\(result.stderr)")
        } else {
            #expect(result.status == 64, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("Error: -yield-interval: "), "\(result.stderr)")
        }
    }

    @Test(
        "--check warns of an admin API beyond loopback without a token, and still exits 0",
        .enabled(if: ProcessInfo.processInfo.environment["LBLAB_ADMIN_TOKEN"] == nil, "a token in the environment silences the warning")
    )
    func checkWarnsOfExposedAdmin() async throws {
        // Only checked: nothing listens.
        let result = await (try ChildProcess("lbctl", ["proxy", "--check", "-backend", "127.0.0.1:9001", "-admin", "0.0.0.0:9900"])).wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("warning: the admin API listens on 0.0.0.0:9900 without a token"), "\(result.stderr)")
        let quiet = await (try ChildProcess("lbctl", ["proxy", "--check", "-backend", "127.0.0.1:9001"])).wait()
        #expect(quiet.status == 0 && !quiet.stderr.contains("warning"), "\(quiet.stderr)")
    }

    @Test("a bad file: one line naming file, line and field, exit code 1")
    func checkBadFile() async throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path("bad.yml")
        try "listen: 127.0.0.1:8080\nservices:\n  - name: api\n    backends: [127.0.0.1:9001]\n    timeouts: { connect: 5 }\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let result = await (try ChildProcess("lbctl", ["proxy", "--check", "--config", path])).wait()
        #expect(result.status == 1)
        #expect(result.stderr == "lbctl proxy: \(path):5: services[0].timeouts.connect: \"5\" needs a unit, e.g. 5s or 5ms\n")
    }

    @Test("quick flags: requests through the proxy reach the backends in turn; SIGTERM exits 0")
    func forwards() async throws {
        let (b1, port1) = try await startBackend(name: "b1")
        let (b2, port2) = try await startBackend(name: "b2")
        defer { Task { await b1.stop(); await b2.stop() } }
        let port = try freePort()
        let proxy = try ChildProcess(
            "lbctl",
            [
                "proxy", "-listen", "127.0.0.1:\(port)", "-backend", "127.0.0.1:\(port1)", "-backend", "127.0.0.1:\(port2)", "-algo", "rr",
                "-threads", "1", "-admin", "127.0.0.1:\(try freePort())",
            ]
        )
        var served: [String] = []
        for _ in 0..<200 where served.count < 4 {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/")!)
            request.timeoutInterval = 5
            if let (_, response) = try? await URLSession.shared.data(for: request),
                let backend = (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "X-LBLab-Backend")
            {
                served.append(backend)
            } else {
                try await Task.sleep(for: .milliseconds(25))  // not listening yet
            }
        }
        #expect(served.count == 4)
        #expect(Set(served) == ["127.0.0.1:\(port1)", "127.0.0.1:\(port2)"])
        #expect(served[0] != served[1] && served[0] == served[2], "round robin alternates: \(served)")
        proxy.send(SIGTERM)
        let result = await proxy.wait(timeout: .seconds(15))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("every request in flight finished"))
        await b1.stop()
        await b2.stop()
    }

    @Test("WebSockets through the proxy to lbctl backend -websocket: least connections spreads them, messages echo, SIGTERM exits 0 once they close")
    func webSockets() async throws {
        let (b1, port1) = try await startBackend(name: "b1", ["-websocket", "/ws"])
        let (b2, port2) = try await startBackend(name: "b2", ["-websocket", "/ws"])
        defer { Task { await b1.stop(); await b2.stop() } }
        let port = try freePort()
        let proxy = try ChildProcess(
            "lbctl",
            [
                "proxy", "-listen", "127.0.0.1:\(port)", "-backend", "127.0.0.1:\(port1)", "-backend", "127.0.0.1:\(port2)", "-algo", "LC",
                "-admin", "127.0.0.1:\(try freePort())",
            ]
        )
        let handshake = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        var clients: [RawConnection] = []
        var served: [String] = []
        for index in 0..<2 {
            var opened: RawConnection?
            for _ in 0..<200 where opened == nil {
                opened = try? RawConnection(port: port)
                if opened == nil { try await Task.sleep(for: .milliseconds(25)) }  // not listening yet
            }
            let client = try #require(opened)
            try client.send(Array(handshake.utf8))
            let head = try client.readHead()
            #expect(head.hasPrefix("HTTP/1.1 101 "), "\(head)")
            served += head.split(separator: "\r\n").filter { $0.hasPrefix("X-LBLab-Backend: ") }.map { String($0.dropFirst(17)) }
            try client.send(WebSocketWire.maskedFrame(opcode: 0x1, Array("message \(index)".utf8)))
            #expect(try client.readFrame() == WebSocketWire.Frame(opcode: 0x1, payload: Array("message \(index)".utf8)))
            clients.append(client)
        }
        #expect(Set(served) == ["127.0.0.1:\(port1)", "127.0.0.1:\(port2)"], "one on each: \(served)")
        for client in clients {
            try client.send(WebSocketWire.maskedFrame(opcode: 0x8, [0x03, 0xE8]))
            #expect(try client.readFrame().opcode == 0x8)
            #expect(try client.readsEnd())
        }
        proxy.send(SIGTERM)
        let result = await proxy.wait(timeout: .seconds(15))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("every request in flight finished"), "\(result.stderr)")
        await b1.stop()
        await b2.stop()
    }

    @Test("the seeds' way: started without backends it answers 503; POST /register adds one, which serves the next request")
    func register() async throws {
        let (backend, backendPort) = try await startBackend(name: "b1")
        defer { Task { await backend.stop() } }
        let port = try freePort()
        let adminPort = try freePort()
        let proxy = try ChildProcess("lbctl", ["proxy", "-listen", "127.0.0.1:\(port)", "-admin", "127.0.0.1:\(adminPort)", "-threads", "1"])
        func send(_ url: String, method: String = "GET", body: String? = nil) async -> (Int, String)? {
            var request = URLRequest(url: URL(string: url)!)
            request.httpMethod = method
            request.httpBody = body.map { Data($0.utf8) }
            request.timeoutInterval = 5
            guard let (data, response) = try? await URLSession.shared.data(for: request) else { return nil }
            return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
        }
        var first: (Int, String)?
        for _ in 0..<200 where first == nil {
            first = await send("http://127.0.0.1:\(port)/")
            if first == nil { try await Task.sleep(for: .milliseconds(25)) }  // not listening yet
        }
        #expect(first?.0 == 503 && first?.1.contains("no backend of service default is available") == true, "\(String(describing: first))")
        let registered = await send(
            "http://127.0.0.1:\(adminPort)/register",
            method: "POST",
            body: #"{"address": "http://127.0.0.1:\#(backendPort)", "weight": 5}"#
        )
        #expect(registered?.0 == 200, "\(String(describing: registered))")
        #expect(registered?.1.contains(#""status":"success""#) == true, "\(String(describing: registered))")
        let after = await send("http://127.0.0.1:\(port)/")
        #expect(after?.0 == 200, "\(String(describing: after))")
        proxy.send(SIGTERM)
        let result = await proxy.wait(timeout: .seconds(15))
        #expect(result.status == 0, "\(result.stderr)")
        await backend.stop()
    }

    @Test("a SIGHUP while stopping neither reloads nor ends the proxy: the request in flight finishes, exit 0")
    func hangupWhileStopping() async throws {
        let (backend, backendPort) = try await startBackend(name: "b1", ["-latency", "800ms"])
        defer { Task { await backend.stop() } }
        let port = try freePort()
        let adminPort = try freePort()
        let proxy = try ChildProcess(
            "lbctl",
            ["proxy", "-listen", "127.0.0.1:\(port)", "-backend", "127.0.0.1:\(backendPort)", "-threads", "1", "-admin", "127.0.0.1:\(adminPort)"]
        )
        // The admin API listens once the proxy's listeners do.
        for _ in 0..<200 {
            if let url = URL(string: "http://127.0.0.1:\(adminPort)/health"), (try? Data(contentsOf: url)) != nil { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        let request = Task { await status(of: "http://127.0.0.1:\(port)/", timeout: 10) }
        try await Task.sleep(for: .milliseconds(200))
        proxy.send(SIGTERM)
        try await Task.sleep(for: .milliseconds(200))
        proxy.send(SIGHUP)
        #expect(await request.value == 200)
        let result = await proxy.wait(timeout: .seconds(15))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("stopped; every request in flight finished") && !result.stderr.contains("reload:"), "\(result.stderr)")
        await backend.stop()
    }

    @Test("SIGHUP after a log rotation: the access log is opened again, and the next lines go to the new file")
    func rotateAccessLog() async throws {
        let (backend, backendPort) = try await startBackend(name: "b1")
        defer { Task { await backend.stop() } }
        let scratch = try ScratchDirectory()
        let log = scratch.path("access.log")
        let port = try freePort()
        let proxy = try ChildProcess(
            "lbctl",
            [
                "proxy", "-listen", "127.0.0.1:\(port)", "-backend", "127.0.0.1:\(backendPort)", "-threads", "1",
                "-admin", "127.0.0.1:\(try freePort())", "-access-log", log,
            ]
        )
        func lines(_ path: String) -> Int {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
        }
        var first: Int?
        for _ in 0..<200 where first == nil {
            first = await status(of: "http://127.0.0.1:\(port)/")
            if first == nil { try await Task.sleep(for: .milliseconds(25)) }  // not listening yet
        }
        #expect(first == 200)
        // Lines are written within a second of their request.
        for _ in 0..<100 where lines(log) < 1 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(lines(log) == 1)
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        proxy.send(SIGHUP)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await status(of: "http://127.0.0.1:\(port)/") == 200)
        for _ in 0..<100 where lines(log) < 1 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(lines(log) == 1 && lines(log + ".1") == 1)
        proxy.send(SIGTERM)
        let result = await proxy.wait(timeout: .seconds(15))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("reload: no configuration file to read (started from flags); access-log reopened"), "\(result.stderr)")
        await backend.stop()
    }

    @Test("SIGHUP: backends of the file are taken up while serving; a file with a problem changes nothing and says why")
    func reload() async throws {
        let (b1, port1) = try await startBackend(name: "b1")
        let (b2, port2) = try await startBackend(name: "b2")
        defer { Task { await b1.stop(); await b2.stop() } }
        let port = try freePort()
        let adminPort = try freePort()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-reload-\(UUID().uuidString).yml").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        func write(_ backends: [(String, Int)], extra: String = "") throws {
            let lines = backends.map { "      - { name: \($0.0), address: 127.0.0.1:\($0.1) }" }.joined(separator: "\n")
            let text = "listen: 127.0.0.1:\(port)\nadmin:\n  listen: 127.0.0.1:\(adminPort)\n\(extra)services:\n  - name: web\n    backends:\n\(lines)\n"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
        }
        func backends() async -> [String]? {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(adminPort)/backends")!)
            request.timeoutInterval = 5
            guard let (data, _) = try? await URLSession.shared.data(for: request),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let services = object["services"] as? [[String: Any]]
            else { return nil }
            return services.flatMap { ($0["backends"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } }
        }
        try write([("b1", port1)])
        let proxy = try ChildProcess("lbctl", ["proxy", "--config", file, "-threads", "1"])
        var names: [String]?
        for _ in 0..<200 where names == nil {
            names = await backends()
            if names == nil { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(names == ["b1"])
        try write([("b2", port2)])
        proxy.send(SIGHUP)
        for _ in 0..<100 where names != ["b2"] {
            try await Task.sleep(for: .milliseconds(20))
            names = await backends()
        }
        #expect(names == ["b2"], "b1 removed, b2 added")
        try write([("b1", port1)], extra: "colour: blue\n")
        proxy.send(SIGHUP)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await backends() == ["b2"], "the running configuration stays")
        proxy.send(SIGTERM)
        let result = await proxy.wait(timeout: .seconds(15))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("reload: \(file): web: removed b1; web: added b2"), "\(result.stderr)")
        #expect(result.stderr.contains("reload: keeping the running configuration: \(file):4:"), "\(result.stderr)")
        #expect(result.stderr.contains("colour"), "\(result.stderr)")
        await b1.stop()
        await b2.stop()
    }
}

/// The status of a GET of `url`, or `nil` when none came (nothing listens yet, or `timeout` passed).
private func status(of url: String, timeout: TimeInterval = 5) async -> Int? {
    var request = URLRequest(url: URL(string: url)!)
    request.timeoutInterval = timeout
    return (try? await URLSession.shared.data(for: request)).flatMap { ($0.1 as? HTTPURLResponse)?.statusCode }
}
