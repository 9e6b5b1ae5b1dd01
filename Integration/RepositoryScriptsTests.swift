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

    /// Runs bash with `arguments` in the repository's root; its exit status, standard output and
    /// standard error (read once bash has closed its output: a few lines here, well within a pipe).
    static func bash(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = arguments
        process.currentDirectoryURL = repositoryRoot
        let (output, errors) = (Pipe(), Pipe())
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        func text(_ pipe: Pipe) -> String { String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
        let standardOutput = text(output)
        process.waitUntilExit()
        return (process.terminationStatus, standardOutput, text(errors))
    }

    @Test("every script parses (bash -n)")
    func scriptsParse() throws {
        let scripts = try Self.scripts()
        #expect(scripts.contains("bench/peers.sh") && scripts.contains("bench/proxy_latency.sh"))
        for script in scripts {
            let result = try Self.bash(["-n", script])
            #expect(result.status == 0, "\(script): \(result.errors)")
        }
    }

    /// Runs `script` in bash with bench/peers.sh sourced, from the repository's root; its standard output.
    static func withBenchHelpers(_ script: String) throws -> String {
        let result = try Self.bash(["-c", "set -euo pipefail; source bench/peers.sh; " + script])
        #expect(result.status == 0, "bash -c \(script): \(result.errors)")
        return result.output
    }

    @Test("bench_median takes the middle value, or the mean of the two middle ones")
    func benchMedian() throws {
        let output = try Self.withBenchHelpers(
            "bench_median 3 1 2; bench_median 4 1 3 2; bench_median 52966 44211 45220 53297; bench_median 0.75 1.25"
        )
        #expect(output.split(separator: "\n") == ["2", "2.5", "49093", "1"])
    }

    @Test("bench_paired_summary: medians, the paired ratio, and the sign test")
    func benchPairedSummary() throws {
        // Four rounds of "req/s p99": LBLab's req/s higher in every round, its p99 lower in one.
        let output = try Self.withBenchHelpers(
            """
            printf '100 2.0\n100 2.0\n200 1.0\n200 1.0\n' >"$BENCH_DIR/h"
            printf '110 1.0\n120 3.0\n220 2.0\n260 2.0\n' >"$BENCH_DIR/l"
            bench_paired_summary "$BENCH_DIR/h" "$BENCH_DIR/l" req/s p99
            """
        )
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        // Medians 150 and 170; the rounds' ratios 1.1, 1.2, 1.1, 1.3, their median 1.15; LBLab never
        // the lower, 4 rounds untied: p = 2 / 16.
        #expect(lines.first?.contains("HAProxy    150.000  LBLab    170.000") == true, "\(lines)")
        #expect(lines.first?.contains("medians 1.133, paired 1.150; LBLab lower in 0, higher in 4 of 4 (sign test p = 0.12)") == true, "\(lines)")
        // p99: medians 1.5 and 2.0; ratios 0.5, 1.5, 2, 2: median 1.75; lower in 1 of 4: p = 2 * 5 / 16.
        #expect(lines.last?.contains("medians 1.333, paired 1.750; LBLab lower in 1, higher in 3 of 4 (sign test p = 0.62)") == true, "\(lines)")
    }

    @Test("bench_compare: a tied round counts neither way")
    func benchCompareTies() throws {
        // Five rounds: B the same as A in one, lower in one, higher in three; the ratios 1.0, 0.9995,
        // 1.0004, 1.0006 and 1.2, their median 1.0004.
        let output = try Self.withBenchHelpers(
            """
            printf '10000\n10000\n10000\n10000\n10000\n' >"$BENCH_DIR/a"
            printf '10000\n9995\n10004\n10006\n12000\n' >"$BENCH_DIR/b"
            bench_compare wrk "$BENCH_DIR/a" loadgen "$BENCH_DIR/b" req/s
            """
        )
        #expect(output.contains("req/s    wrk  10000.000  loadgen  10004.000  loadgen / wrk: medians 1.000,"), "\(output)")
        // 4 untied rounds split 1 / 3: p = 2 * (1 + 4) / 16.
        #expect(output.contains("paired 1.000; loadgen lower in 1, higher in 3 of 5 (sign test p = 0.62)"), "\(output)")
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
