import LBCore
import LBStats
import NIOCore

/// The harness's calls to what it started on loopback (backends' control endpoint, the proxy's admin
/// API), with failures as ``HarnessError/control(what:reason:)``.
enum LoopbackHTTP {
    static func call(
        _ method: String,
        _ address: HostPort,
        _ path: String,
        body: String? = nil,
        timeout: Duration = .seconds(2),
        group: any EventLoopGroup
    ) async throws(HarnessError) -> SocketHTTP.Response {
        do {
            return try await SocketHTTP.call(method, .tcp(address), path, body: body, timeout: timeout, group: group)
        } catch {
            throw .control(what: error.what, reason: error.reason)
        }
    }
}
