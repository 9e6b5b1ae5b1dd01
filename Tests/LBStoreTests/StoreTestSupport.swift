import Foundation
import LBCore

/// A fresh directory for one test's files, removed when the test is done with it.
struct TemporaryDirectory: ~Copyable {
    let url: URL

    init() throws {
        self.url = FileManager.default.temporaryDirectory.appendingPathComponent("lblab-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String {
        self.url.appendingPathComponent(name).path
    }

    deinit {
        try? FileManager.default.removeItem(at: self.url)
    }
}

/// The request record the tests write as number `i`: every field set, and every optional one
/// sometimes missing.
func sampleRequest(_ i: Int) -> RequestRecord {
    RequestRecord(
        id: Int64(i),
        clientID: Int32(i % 50),
        clientIP: "203.0.113.\(i % 50 + 1)",
        intendedMicros: Int64(i) * 50,
        sentMicros: Int64(i) * 50 + 3,
        firstByteMicros: i % 10 == 9 ? nil : Int64(i) * 50 + 900,
        doneMicros: Int64(i) * 50 + 950,
        status: i % 10 == 9 ? nil : 200,
        backendID: i % 10 == 9 ? nil : i % 3,
        attempts: 1 + i % 2,
        bytesIn: 120,
        bytesOut: 80,
        error: i % 10 == 9 ? .timedOut : nil
    )
}
