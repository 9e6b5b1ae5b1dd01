import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process that staged a chunk of records (`staged_records.writer`): its host, its pid and when it
/// started, so that a later process can tell the chunks of a recorder that died (to be turned into
/// rows) from those of one still at work on the same file (to be left alone).
struct StagingProcess: Equatable {
    var host: String
    var pid: Int32
    /// The process's start time in clock ticks since boot (`/proc/PID/stat`, field 22); with the pid,
    /// it names a process even after its pid is reused. 0 where `/proc` is absent.
    var startTicks: UInt64

    /// This process.
    static let current = StagingProcess(
        host: Self.hostName(),
        pid: getpid(),
        startTicks: Self.startTicks(of: getpid()) ?? 0
    )

    /// As `staged_records.writer` holds it: `host pid start`.
    var name: String { "\(self.host) \(self.pid) \(self.startTicks)" }

    init(host: String, pid: Int32, startTicks: UInt64) {
        self.host = host
        self.pid = pid
        self.startTicks = startTicks
    }

    init?(name: String) {
        let parts = name.split(separator: " ")
        guard parts.count == 3, let pid = Int32(parts[1]), let start = UInt64(parts[2]) else { return nil }
        self.init(host: String(parts[0]), pid: pid, startTicks: start)
    }

    /// Whether this process is known to have ended: it ran on this host and no process with its pid and
    /// start time runs now. A process of another host is never known to have ended.
    var hasEnded: Bool {
        guard self.host == Self.current.host else { return false }
        if self == Self.current { return false }
        if kill(self.pid, 0) != 0 && errno == ESRCH { return true }
        guard self.startTicks != 0, let start = Self.startTicks(of: self.pid) else { return false }
        return start != self.startTicks
    }

    private static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name.replacingOccurrences(of: " ", with: "_")
    }

    /// The start time of process `pid` from `/proc/PID/stat`: the 20th field after the command name
    /// (which is in parentheses and may itself hold spaces).
    private static func startTicks(of pid: Int32) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}

extension ResultsDatabase {
    /// Turns the chunks left by recorders that died into rows of their tables.
    /// Chunks of a process still at work (or of another host) are left to it. A chunk that cannot be
    /// read (a format of a newer LBLab, a damaged file) stays where it is, and a line on standard error
    /// says so: opening the file does not fail for it. Returns the rows made.
    @discardableResult
    static func recoverStagedRecords(_ writer: some DatabaseWriter, path: String) throws -> Int {
        let chunks = try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT id, writer FROM staged_records ORDER BY id").map { row in
                (id: row["id"] as Int64, writer: row["writer"] as String)
            }
        }
        var ended: [String: Bool] = [:]
        let gone = chunks.filter { chunk in
            if let known = ended[chunk.writer] { return known }
            let gone = StagingProcess(name: chunk.writer)?.hasEnded ?? true
            ended[chunk.writer] = gone
            return gone
        }
        let writers = Dictionary(uniqueKeysWithValues: gone.map { ($0.id, $0.writer) })
        return Self.unstage(gone.map(\.id), writer) { chunk, error in
            let line = "lblab: \(path): staged records \(chunk) (from \(writers[chunk] ?? "?")) stay staged: \(error)\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    /// Turns each of `chunks` into rows of its table and returns the rows made. Chunks go
    /// ``unstageGroup`` at a time, in one transaction, so that the end of a long run does not pay a
    /// commit per chunk; a group that fails is tried again chunk by chunk, so that only a chunk that
    /// fails on its own stays staged, and `failed` hears of it.
    @discardableResult
    static func unstage(
        _ chunks: [Int64],
        _ writer: some DatabaseWriter,
        failed: (Int64, any Error) -> Void
    ) -> Int {
        // All of `part`'s chunks become rows in one transaction, or none does.
        func inOneTransaction(_ part: ArraySlice<Int64>) throws -> Int {
            try writer.write { db in try part.reduce(0) { $0 + (try BatchWriter.unstage(chunk: $1, in: db) ?? 0) } }
        }
        var rows = 0
        for start in stride(from: chunks.startIndex, to: chunks.endIndex, by: Self.unstageGroup) {
            let group = chunks[start..<min(start + Self.unstageGroup, chunks.endIndex)]
            do {
                rows += try inOneTransaction(group)
            } catch {
                guard group.count > 1 else {
                    failed(group[start], error)
                    continue
                }
                for index in group.indices {
                    do {
                        rows += try inOneTransaction(group[index...index])
                    } catch {
                        failed(group[index], error)
                    }
                }
            }
        }
        return rows
    }

    /// How many chunks ``unstage(_:_:failed:)`` turns into rows in one transaction: about 65,536
    /// request rows at the size a batch is due (``RunRecorder/batchRecords``).
    static let unstageGroup = 64
}
