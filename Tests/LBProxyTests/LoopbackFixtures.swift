import Foundation
import LBBackend
import LBConfig
import LBCore
import LBLoad
import LBTesting

#if canImport(Glibc)
import Glibc
#endif

// What the proxy tests share: backends and load on loopback, and a client that speaks HTTP/1.1 on a
// raw socket (to send what URLSession would not, and to read the bytes as they come).

/// Runs `body` with a synthetic backend for each of `names` (configured by `configure`), handing it
/// their specs.
func withBackends(
    _ names: [String],
    _ configure: @escaping (inout BackendConfiguration) -> Void,
    _ body: ([BackendSpec]) async throws -> Void
) async throws {
    guard let name = names.first else { return try await body([]) }
    try await withSyntheticBackend(name: name, configure) { address in
        try await withBackends(Array(names.dropFirst()), configure) { rest in
            try await body([BackendSpec(name: name, address: address)] + rest)
        }
    }
}

/// Whether `condition` holds within 5 s, looked at every 20 ms.
func eventually(_ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<250 {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// `requests` requests through `proxy`, `connections` at a time in a closed loop, and what they got.
func closedLoad(_ proxy: HostPort, requests: Int, connections: Int = 6) async throws -> LoadStatistics {
    var configuration = LoadConfiguration(
        target: .init(host: proxy.host, port: proxy.port, path: "/"),
        clients: connections,
        pacing: .closedLoop(connections: connections)
    )
    configuration.requests = requests
    configuration.timeout = .seconds(10)
    return try await LoadRun(configuration: configuration, sink: nil).run().statistics
}

/// Sends `request` on a new connection to `port` and reads one response: its head, and its body
/// decoded from Content-Length or chunked framing.
func rawRequest(_ port: Int, _ request: [UInt8]) throws -> (head: String, body: [UInt8]) {
    let fd = try connectLoopback(port)
    defer { close(fd) }
    return try rawRequest(on: fd, request)
}

/// Sends `request` on the connection `fd` and reads one response (see ``rawRequest(_:_:)``).
func rawRequest(on fd: Int32, _ request: [UInt8]) throws -> (head: String, body: [UInt8]) {
    var sent = 0
    while sent < request.count {
        let count = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { throw POSIXError(.EPIPE) }
        sent += count
    }
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    func fill() throws {
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { throw POSIXError(.ECONNRESET) }
        data += buffer[0..<count]
    }
    func find(_ pattern: [UInt8], from start: Int) throws -> Int {
        while true {
            if data.count >= pattern.count + start {
                for index in start...(data.count - pattern.count) where Array(data[index..<index + pattern.count]) == pattern {
                    return index
                }
            }
            try fill()
        }
    }
    let headEnd = try find([13, 10, 13, 10], from: 0)
    let head = String(decoding: data[0..<headEnd], as: UTF8.self)
    var position = headEnd + 4
    var body: [UInt8] = []
    if let line = head.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }),
        let length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
    {
        while data.count < position + length { try fill() }
        body = Array(data[position..<position + length])
    } else {
        while true {
            let lineEnd = try find([13, 10], from: position)
            let size = Int(String(decoding: data[position..<lineEnd], as: UTF8.self).split(separator: ";")[0], radix: 16) ?? 0
            position = lineEnd + 2
            if size == 0 { break }
            while data.count < position + size + 2 { try fill() }
            body += data[position..<position + size]
            position += size + 2
        }
    }
    return (head, body)
}

/// Writes `request` on a new connection to `port` and reads until `responses` complete responses
/// (of the synthetic backend's fixed length) have arrived, or 5 s have passed.
func rawExchange(_ port: Int, _ request: String, responses: Int) throws -> String {
    let fd = try connectLoopback(port)
    defer { close(fd) }
    _ = request.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, 0) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while String(decoding: received, as: UTF8.self).components(separatedBy: "\r\n\r\nxx").count <= responses {
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { break }
        received += buffer[0..<count]
    }
    return String(decoding: received, as: UTF8.self)
}
