import Foundation
import LBStats
import NIOCore
import NIOPosix
import Testing

@Suite("Docker Engine API")
struct DockerStatsTests {
    /// A stats answer of the Engine API on a cgroup v2 host (abridged from a real one).
    static let fixture = """
        {"read":"2026-11-23T10:00:01.5Z","pids_stats":{"current":7,"limit":4915},
         "cpu_stats":{"cpu_usage":{"total_usage":2500000000,"usage_in_kernelmode":900000000,"usage_in_usermode":1600000000},
           "system_cpu_usage":91000000000,"online_cpus":2,
           "throttling_data":{"periods":120,"throttled_periods":30,"throttled_time":410000000}},
         "memory_stats":{"usage":52428800,"stats":{"anon":31457280,"file":20971520,"inactive_file":10485760},"limit":268435456},
         "networks":{"eth0":{"rx_bytes":1000,"tx_bytes":2000},"eth1":{"rx_bytes":5,"tx_bytes":7}},
         "name":"/lblab-b1","id":"abc"}
        """

    @Test("a stats object: CPU and throttling in microseconds, memory less the inactive page cache, networks summed")
    func parse() throws {
        let stats = try #require(DockerStats.parse(Data(Self.fixture.utf8)))
        #expect(stats.cpuUsageMicros == 2_500_000 && stats.cpuThrottledMicros == 410_000)
        #expect(stats.memoryBytes == Int64(41_943_040), "usage less inactive_file")
        #expect(stats.pids == 7 && stats.rxBytes == 1_005 && stats.txBytes == 2_007)
        // A cgroup v1 host reports the page cache as "cache".
        let v1 = Self.fixture.replacingOccurrences(of: "\"inactive_file\"", with: "\"cache\"")
        #expect(DockerStats.parse(Data(v1.utf8))?.memoryBytes == Int64(41_943_040))
        #expect(DockerStats.parse(Data("{\"message\":\"No such container\"}".utf8)) == nil)
    }

    /// The whole path: an HTTP/1.1 call on a unix socket to a stand-in engine that answers as Docker
    /// does (chunked), for the container named in the path.
    @Test("read over the engine's unix socket, and a missing container is an error naming the call")
    func overUnixSocket() async throws {
        let directory = NSTemporaryDirectory() + "lblab-docker-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/docker.sock"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(FakeEngine()) }
            }
            .bind(unixDomainSocketPath: socket)
            .get()
        let stats = try await DockerStats.read(container: "lblab-b1", socket: socket, group: group)
        #expect(stats.cpuUsageMicros == 2_500_000 && stats.memoryBytes == 41_943_040)
        await #expect(throws: SocketHTTP.Failure.self) {
            _ = try await DockerStats.read(container: "nothing", socket: socket, group: group)
        }
        try await server.close()
        try await group.shutdownGracefully()
    }
}

/// Answers `GET /containers/lblab-b1/stats…` with the fixture in two chunks, anything else with 404.
private final class FakeEngine: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var received = ""

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received += String(buffer: self.unwrapInboundIn(data))
        guard self.received.contains("\r\n\r\n") else { return }
        let found = self.received.hasPrefix("GET /containers/lblab-b1/stats?stream=false")
        let body = found ? DockerStatsTests.fixture : "{\"message\":\"No such container: nothing\"}"
        let split = body.index(body.startIndex, offsetBy: body.count / 2)
        let chunks = [String(body[..<split]), String(body[split...])]
        var answer = "HTTP/1.1 \(found ? "200 OK" : "404 Not Found")\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        for chunk in chunks { answer += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n" }
        answer += "0\r\n\r\n"
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: answer))).whenComplete { _ in channel.close(promise: nil) }
    }
}
