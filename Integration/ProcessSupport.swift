import Foundation
import LBCore
import LBTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The repository's root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

/// An LBLab executable built by `swift build` (debug, where the tests run from).
func executable(_ name: String) -> URL {
    repositoryRoot.appendingPathComponent(".build/debug/\(name)")
}

/// An LBLab executable of the release build (`scripts/build-release.sh`, which scripts/test.sh runs).
func releaseExecutable(_ name: String) -> URL {
    repositoryRoot.appendingPathComponent(".build/release/\(name)")
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


/// Runs `name` `rounds` times with `fixed` and then `flags`, each time with the value of one flag (in
/// turn) mutated at random (``Mutation``, from `seed`), and checks that every run ends by itself, and
/// that every refusal names the flag whose value was mutated (in the message before the usage lines:
/// ArgumentParser quotes a value as it came, so one with a line break takes two lines). Returns how
/// many runs were refused.
func runMutatingFlags(_ name: String, _ fixed: [String], _ flags: [(String, String)], rounds: Int, seed: UInt64) async throws -> Int {
    var generator = SeededGenerator(seed: seed)
    var refused = 0
    for round in 0..<rounds {
        let mutated = round % flags.count
        var arguments = fixed
        var value = ""
        for (index, (flag, given)) in flags.enumerated() {
            let text = index == mutated ? String(decoding: Mutation.mutated(Array(given.utf8), using: &generator), as: UTF8.self) : given
            if index == mutated { value = text }
            arguments += [flag, text]
        }
        let child = try ChildProcess(name, arguments)
        let result = await child.wait(timeout: .seconds(20))
        #expect(child.process.terminationReason == .exit, "\(arguments): \(result.stderr)")
        guard result.status != 0 else { continue }
        refused += 1
        let message = result.stderr.components(separatedBy: "\nUsage:")[0]
        #expect(message.contains(flags[mutated].0), "\(flags[mutated].0) \(String(reflecting: value)): \(result.stderr)")
    }
    return refused
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
