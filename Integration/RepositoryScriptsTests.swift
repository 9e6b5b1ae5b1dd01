import Foundation
import Testing

/// The shell scripts CI does not run: the benchmarks (minutes each, with HAProxy, nginx and wrk) and
/// the helpers they share. A syntax error in one would otherwise show only when somebody next measures.
@Suite("Repository scripts")
struct RepositoryScriptsTests {
    /// Every shell script of `bench/` and `scripts/`, and CI's entry point, by path from the root.
    static func scripts() throws -> [String] {
        var paths = [".ci/run"]
        for folder in ["bench", "scripts"] {
            let names = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent(folder).path)
            paths += names.filter { $0.hasSuffix(".sh") }.sorted().map { "\(folder)/\($0)" }
        }
        return paths
    }

    @Test("every script parses (bash -n)")
    func scriptsParse() throws {
        let scripts = try Self.scripts()
        #expect(scripts.contains("bench/peers.sh") && scripts.contains("bench/proxy_latency.sh"))
        for script in scripts {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-n", script]
            process.currentDirectoryURL = repositoryRoot
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            process.waitUntilExit()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0, "\(script): \(message)")
        }
    }

    @Test("every benchmark script is in the README's Benchmarks section")
    func benchmarksDocumented() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "\n## Benchmarks\n").dropFirst().first)
            .components(separatedBy: "\n## ").first!
        // peers.sh is the others' shared helper, sourced and never run.
        let benchmarks = try Self.scripts().filter { $0.hasPrefix("bench/") && $0 != "bench/peers.sh" }
        #expect(benchmarks.contains("bench/proxy_bench.sh"))
        for script in benchmarks {
            #expect(section.contains("\n\(script) "), "\(script) is not listed under README's Benchmarks")
        }
    }
}
