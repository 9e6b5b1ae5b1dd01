import Foundation
import LBTesting

#if canImport(Glibc)
import Glibc
#endif

/// The repository's root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

/// An LBLab executable built by `swift build` (debug, where the tests run from).
func executable(_ name: String) -> URL {
    repositoryRoot.appendingPathComponent(".build/debug/\(name)")
}

/// A child process started by a test, stopped by PID when the test is done with it.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let outputPipe = Pipe()
    private let errorPipe = Pipe()

    convenience init(_ name: String, _ arguments: [String]) throws {
        try self.init(executableURL: executable(name), arguments)
    }

    init(executableURL: URL, _ arguments: [String]) throws {
        self.process.executableURL = executableURL
        self.process.arguments = arguments
        self.process.standardOutput = self.outputPipe
        self.process.standardError = self.errorPipe
        try self.process.run()
    }

    var pid: Int32 { self.process.processIdentifier }

    /// Sends `signal` to this process (and only this one).
    func send(_ signal: Int32) {
        if self.process.isRunning {
            kill(self.pid, signal)
        }
    }

    /// Waits for the process to exit, at most `timeout`; kills it when it does not.
    func wait(timeout: Duration = .seconds(60)) async -> (status: Int32, stdout: String, stderr: String) {
        let deadline = ContinuousClock.now + timeout
        while self.process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if self.process.isRunning {
            kill(self.pid, SIGKILL)
            self.process.waitUntilExit()
        }
        let stdout = String(decoding: self.outputPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: self.errorPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (self.process.terminationStatus, stdout, stderr)
    }

    /// Stops the process with SIGTERM and waits for it.
    func stop() async {
        self.send(SIGTERM)
        _ = await self.wait(timeout: .seconds(10))
    }
}


/// Starts `lbctl backend` on a free port and waits until it answers.
func startBackend(name: String, _ extra: [String] = []) async throws -> (ChildProcess, Int) {
    let port = try freePort()
    let backend = try ChildProcess("lbctl", ["backend", "-listen", "127.0.0.1:\(port)", "-name", name] + extra)
    for _ in 0..<200 {
        if let url = URL(string: "http://127.0.0.1:\(port)/health"), (try? Data(contentsOf: url)) != nil {
            return (backend, port)
        }
        try await Task.sleep(for: .milliseconds(25))
    }
    await backend.stop()
    throw POSIXError(.ETIMEDOUT)
}

/// A temporary directory removed at the end of the test.
struct ScratchDirectory: ~Copyable {
    let url: URL

    init() throws {
        self.url = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { self.url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: self.url) }
}
