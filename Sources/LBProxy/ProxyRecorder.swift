import Foundation
public import LBCore
import NIOCore
import Synchronization

/// Where the proxy's records go: a row per request (`proxy_requests`) and an event per state change
/// (`events`) to a ``RecordSink`` (the SQLite store with `-db`), and a JSON line per request to the
/// access log. Times are microseconds since the proxy started.
///
/// Rows are gathered per event loop (``LoopRecords``) and handed to the sink in chunks, so the request
/// path takes no lock for them; the sink's own writer thread does the SQLite work.
public final class ProxyRecorder: Sendable {
    let sink: (any RecordSink)?
    let accessLog: AccessLog?
    /// When the proxy started (uptime nanoseconds): time zero of the records.
    let startNanos: UInt64
    private let backendIDs = Mutex<[ObjectIdentifier: Int]>([:])
    private let knownBackendIDs: [String: Int]

    /// A recorder to `sink` and/or an access log at `accessLogPath` (`-` for standard output).
    ///
    /// When the proxy records into a run that another process started (`lbctl run`), `clockOrigin` is
    /// that run's time zero (monotonic uptime nanoseconds, the same clock in every process) and
    /// `backendIDs` the ids the run already gave its backends by name; otherwise time zero is now and
    /// backends are numbered as they are first seen.
    public init(sink: (any RecordSink)?, accessLogPath: String?, clockOrigin: UInt64? = nil, backendIDs: [String: Int] = [:]) throws {
        self.sink = sink
        self.accessLog = try accessLogPath.map(AccessLog.init(path:))
        self.startNanos = clockOrigin ?? NIODeadline.now().uptimeNanoseconds
        self.knownBackendIDs = backendIDs
    }

    /// Microseconds since the proxy started, at uptime `nanos`.
    func micros(_ nanos: UInt64) -> Int64 {
        Int64(bitPattern: nanos &- self.startNanos) / 1_000
    }

    /// The run's id of `backend`, recording it as a backend of the run the first time.
    func backendID(_ backend: BackendRuntime) -> Int {
        let key = ObjectIdentifier(backend.state)
        let (id, isNew) = self.backendIDs.withLock { ids -> (Int, Bool) in
            if let id = ids[key] { return (id, false) }
            if let known = self.knownBackendIDs[backend.spec.name] {
                ids[key] = known
                return (known, false)
            }
            let id = max(ids.values.max() ?? 0, self.knownBackendIDs.values.max() ?? 0) + 1
            ids[key] = id
            return (id, true)
        }
        if isNew {
            self.sink?.record(
                BackendRecord(id: id, name: backend.spec.name, address: backend.spec.address.description, weight: Double(backend.spec.weight))
            )
        }
        return id
    }

    /// Records an event of `kind` about `subject` now.
    public func event(_ kind: String, _ subject: String, _ detail: [String: String] = [:]) {
        guard let sink = self.sink else { return }
        let json = detail.isEmpty ? nil : (try? JSONSerialization.data(withJSONObject: detail, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
        sink.record(RunEvent(tMicros: self.micros(NIODeadline.now().uptimeNanoseconds), kind: kind, subject: subject, detailJSON: json))
    }

    /// Hands every loop's gathered rows over (at shutdown, after the loops stopped).
    func flush(_ records: LoopRecords) {
        records.flush()
        self.accessLog?.sync()
    }
}

/// One event loop's records not yet handed over.
final class LoopRecords {
    let recorder: ProxyRecorder
    private var rows: [ProxyRequestRecord] = []
    private var log: [UInt8] = []
    static let chunk = 256

    init(recorder: ProxyRecorder) {
        self.recorder = recorder
        self.rows.reserveCapacity(Self.chunk)
    }

    /// Adds a request's row, and its access-log line.
    func add(_ row: ProxyRequestRecord, line: () -> String) {
        if self.recorder.sink != nil {
            self.rows.append(row)
            if self.rows.count >= Self.chunk { self.flushRows() }
        }
        if self.recorder.accessLog != nil {
            self.log += line().utf8
            self.log.append(0x0A)
            if self.log.count >= 64 * 1024 { self.flushLog() }
        }
    }

    /// Hands everything gathered over.
    func flush() {
        self.flushRows()
        self.flushLog()
    }

    private func flushRows() {
        guard !self.rows.isEmpty else { return }
        self.recorder.sink?.record(contentsOf: self.rows)
        self.rows.removeAll(keepingCapacity: true)
    }

    private func flushLog() {
        guard !self.log.isEmpty else { return }
        self.recorder.accessLog?.write(self.log)
        self.log.removeAll(keepingCapacity: true)
    }
}

@available(*, unavailable)
extension LoopRecords: Sendable {}

/// The access log: JSON lines appended to a file, or written to standard output.
final class AccessLog: Sendable {
    private let descriptor: Mutex<Int32>

    init(path: String) throws {
        self.descriptor = Mutex(try Self.open(path))
    }

    private static func open(_ path: String) throws -> Int32 {
        if path == "-" { return 1 }
        let fd = Foundation.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ProxyError.unsupported("access log \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Writes to `path` from now: the file opened again after a log rotation moved it, or another
    /// file. When `path` cannot be opened the lines go on to the old file, and the error says why.
    func reopen(_ path: String) throws {
        let fd = try Self.open(path)
        let old = self.descriptor.withLock { current in
            defer { current = fd }
            return current
        }
        if old > 2 { close(old) }
    }

    /// Appends `bytes` (whole lines).
    func write(_ bytes: [UInt8]) {
        self.descriptor.withLock { fd in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    offset += written
                }
            }
        }
    }

    /// Pushes what was written to the disk.
    func sync() {
        self.descriptor.withLock { fd in
            if fd > 2 { _ = fsync(fd) }
        }
    }
}

extension String {
    /// The string as a JSON string literal, quotes included.
    var jsonQuoted: String {
        var out = "\""
        for scalar in self.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
