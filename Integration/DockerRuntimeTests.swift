import Foundation
import GRDB
import Testing

/// `lbctl run --runtime docker` against a stand-in engine whose containers are real backend processes:
/// the harness finds them, sets their limits and behaviour, faults them through the Engine API,
/// samples them from it, and leaves them running.
@Suite("lbctl run --runtime docker", .serialized)
struct DockerRuntimeTests {
    static let scenario = """
        name: docker-trial
        question: does the Docker runtime drive containers?
        duration: 4s
        warmup: 1s
        algorithms: [round-robin]
        backends:
          count: 2
          latency: 1ms
          limits: {cpu: 0.5, memory: 64MiB}
        load: {clients: 10, rate: 20}
        timeline:
          - {at: 1500ms, kill: b2}
          - {at: 2500ms, restart: b2}
        proxy:
          health: {type: http, path: /health, interval: 200ms, timeout: 150ms, fall: 1, rise: 1}
          retries: {attempts: 2, on: [connect-failure, reset, "502", "503", "504"], budget: {share: 1.0, min-concurrency: 20}}
        expect:
          - errors(round-robin) == 0
        """

    @Test("a WebSocket load needs containers whose backends answer its path as a WebSocket: refused by name before any load")
    func webSocketLoadNeedsWebSocketBackends() async throws {
        let scratch = try ScratchDirectory()
        let engine = try await FakeDockerEngine(socket: scratch.path("docker.sock"), backends: ["b1", "b2"])
        let scenarioPath = scratch.path("docker-trial.yml")
        let scenario = Self.scenario.replacingOccurrences(of: "load: {clients: 10, rate: 20}", with: "load: {clients: 10, rate: 20, path: /ws, websocket: true}")
        try scenario.write(toFile: scenarioPath, atomically: true, encoding: .utf8)
        let run = try ChildProcess(
            "lbctl",
            ["run", "--runtime", "docker", "--docker-socket", engine.socket, "--scenario", scenarioPath, "--db", scratch.path("lblab.db"), "--out", scratch.path("out")]
        )
        let result = await run.wait(timeout: .seconds(60))
        let calls = engine.calls
        await engine.shutdown()
        #expect(result.status != 0)
        #expect(result.stderr.contains("container lblab-b1") && result.stderr.contains("no -websocket /ws"), "\(result.stderr)")
        #expect(!calls.contains { $0.hasPrefix("POST") }, "nothing was changed: \(calls)")
    }

    @Test("containers found by name, limited, killed and started again through the API, sampled from it, left running")
    func dockerRuntime() async throws {
        let scratch = try ScratchDirectory()
        let engine = try await FakeDockerEngine(socket: scratch.path("docker.sock"), backends: ["b1", "b2"])
        let scenarioPath = scratch.path("docker-trial.yml")
        try Self.scenario.write(toFile: scenarioPath, atomically: true, encoding: .utf8)
        let database = scratch.path("lblab.db")
        let run = try ChildProcess(
            "lbctl",
            ["run", "--runtime", "docker", "--docker-socket", engine.socket, "--scenario", scenarioPath, "--db", database, "--out", scratch.path("out")]
        )
        let result = await run.wait(timeout: .seconds(90))
        let calls = engine.calls
        let running = (engine.isRunning("lblab-b1"), engine.isRunning("lblab-b2"))
        await engine.shutdown()
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        #expect(result.stderr.contains("containers: Docker"))
        #expect(calls.contains { $0.hasPrefix("POST /containers/lblab-b1/update") && $0.contains("\"NanoCpus\":500000000") && $0.contains("\"Memory\":67108864") })
        let kill = try #require(calls.firstIndex { $0.hasPrefix("POST /containers/lblab-b2/kill?signal=SIGKILL") })
        #expect(calls[kill...].contains { $0.hasPrefix("POST /containers/lblab-b2/start") }, "restarted after the kill")
        #expect(running == (true, true), "left running as found")

        let queue = try DatabaseQueue(path: database)
        try await queue.read { db in
            // Samples of the backends come from the engine: its CPU counter moves 7 ms per call.
            let b1 = try Int64.fetchAll(db, sql: "SELECT cpu_usage_us FROM samples WHERE source = 'b1' ORDER BY t_us")
            #expect(b1.count >= 10 && zip(b1, b1.dropFirst()).allSatisfy { $1 - $0 == 7_000 }, "\(b1.prefix(5))")
            let throttled = try Int64.fetchOne(db, sql: "SELECT max(cpu_throttled_us) FROM samples WHERE source = 'b2'")
            #expect(throttled == 3_000)
            let isolation = try String.fetchAll(db, sql: "SELECT json_extract(spec_json, '$.container') FROM backends")
            #expect(isolation == ["docker", "docker"])
            let events = try String.fetchAll(db, sql: "SELECT kind FROM events WHERE kind IN ('kill', 'restart', 'health_down', 'health_up') ORDER BY t_us")
            #expect(events == ["kill", "health_down", "restart", "health_up"], "\(events)")
            let errors = try Row.fetchAll(db, sql: "SELECT q.id, q.status, q.error, q.intended_us, q.done_us, p.attempts, p.retried_from, p.status AS proxy_status FROM requests q LEFT JOIN proxy_requests p ON p.request_id = q.id WHERE q.error IS NOT NULL OR q.status <> 200")
            let timeline = try Row.fetchAll(db, sql: "SELECT t_us, kind, subject FROM events ORDER BY t_us")
            #expect(errors.isEmpty, "\(errors)\n\(timeline)")
        }
    }
}
