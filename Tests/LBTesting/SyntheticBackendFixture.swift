public import LBBackend
public import LBCore

/// Runs `body` with a synthetic backend listening on an ephemeral loopback port, and stops the backend
/// afterwards whether `body` returns or throws. `configure` adjusts the backend (latency, errors,
/// capacity …) before it starts. Returns what `body` returns.
public func withSyntheticBackend<Result>(
    name: String = "b1",
    _ configure: (inout BackendConfiguration) -> Void = { _ in },
    _ body: (HostPort) async throws -> Result
) async throws -> Result {
    var configuration = BackendConfiguration(name: name, listen: HostPort(host: "127.0.0.1", port: 0))
    configure(&configuration)
    let backend = try SyntheticBackend(configuration: configuration)
    let address = try await backend.start()
    let result: Result
    do {
        result = try await body(address)
    } catch {
        try await backend.stop()
        throw error
    }
    try await backend.stop()
    return result
}
