import Foundation
import GRDB
import Testing

/// Which code made a run: the commit a binary was built from, stamped at build time, whatever
/// checkout the binary is later run from.
@Suite("build stamp", .serialized)
struct BuildStampTests {
    /// What `git ARGUMENTS` prints in `directory`, trimmed.
    static func git(_ directory: String, _ arguments: [String]) async throws -> String {
        let git = try ChildProcess(
            executableURL: URL(fileURLWithPath: "/usr/bin/env"),
            ["git", "-C", directory, "-c", "user.name=LBLab test", "-c", "user.email=test@lblab.invalid"] + arguments
        )
        let result = await git.wait(timeout: .seconds(30))
        #expect(result.status == 0, "git \(arguments): \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("a run records the commit its binary was built from and whether that tree was modified, not the checkout the binary sits in")
    func runRecordsBuildCommit() async throws {
        let scratch = try ScratchDirectory()
        // The binary, hard-linked into another checkout with a commit of its own.
        let other = scratch.path("other")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        _ = try await Self.git(other, ["init", "-q"])
        _ = try await Self.git(other, ["commit", "-q", "--allow-empty", "-m", "another project"])
        let otherCommit = try await Self.git(other, ["rev-parse", "HEAD"])
        let linked = other + "/loadgen"
        try FileManager.default.linkItem(atPath: executable("loadgen").path, toPath: linked)

        // The tests run right after the build (scripts/test.sh), from the checkout that was built.
        let built = try await Self.git(repositoryRoot.path, ["rev-parse", "HEAD"])
        let modified = try await !Self.git(repositoryRoot.path, ["status", "--porcelain"]).isEmpty
        #expect(built.count == 40 && built != otherCommit)

        let (backend, port) = try await startBackend(name: "b1")
        defer { Task { await backend.stop() } }
        let database = scratch.path("lblab.db")
        let loadgen = try ChildProcess(
            executableURL: URL(fileURLWithPath: linked),
            ["-url", "http://127.0.0.1:\(port)/", "-clients", "2", "-rate", "10", "-duration", "300ms", "-db", database]
        )
        let result = await loadgen.wait()
        #expect(result.status == 0, "\(result.stderr)")
        let stored = try DatabaseQueue(path: database).read { db in try Row.fetchOne(db, sql: "SELECT git_commit, git_modified FROM runs") }
        let row = try #require(stored)
        #expect(row["git_commit"] == built, "recorded \(row["git_commit"] as String?), built from \(built), sitting in \(otherCommit)")
        #expect(row["git_modified"] == modified)

        let version = try ChildProcess(executableURL: URL(fileURLWithPath: linked), ["--version"])
        let printed = await version.wait()
        #expect(printed.stdout.contains("(\(built.prefix(12))\(modified ? "+modified" : ""))"), "\(printed.stdout)")
        await backend.stop()
    }
}
