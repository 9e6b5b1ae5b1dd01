import Foundation
import Histogram
import LBCore

/// The summary of a load run: asked and achieved rate, statuses, errors, connections, backend shares,
/// and the latency percentiles of corrected latency and service time.
public struct LoadReport: Sendable {
    /// What the run was asked to do.
    public var configuration: LoadConfiguration
    /// What it measured (after the warm-up).
    public var statistics: LoadStatistics
    /// From the start to the last request's end.
    public var elapsed: Duration
    /// The stretch the send rate is measured over: the scheduled duration less the warm-up (or the
    /// time actually taken, when the run ended early or was bounded by a request count).
    public var sendWindow: Duration
    /// Requests numbered, warm-up included.
    public var requestsNumbered: Int64
    /// Whether the run was interrupted.
    public var interrupted: Bool

    /// The percentiles every summary shows.
    public static let percentiles: [Double] = [50, 90, 99, 99.9, 99.99]

    /// Requests sent per second: those whose first byte went out within the send window, over its
    /// length (a request sent after the scheduled end does not count toward the rate).
    public var achievedRate: Double {
        Double(self.statistics.sentInWindow) / max(self.sendWindow.seconds, 1e-9)
    }

    /// The JSON form of `-json`.
    public struct JSON: Codable, Sendable {
        public struct Latency: Codable, Sendable {
            public var p50Ms: Double
            public var p90Ms: Double
            public var p99Ms: Double
            public var p999Ms: Double
            public var p9999Ms: Double
            public var maxMs: Double
            public var meanMs: Double
        }

        public var mode: String
        /// `http`, or `websocket` when each request is a WebSocket message.
        public var transport: String
        public var clients: Int
        public var askedRate: Double?
        public var achievedRate: Double
        public var sent: Int
        public var completed: Int
        public var elapsedSeconds: Double
        public var interrupted: Bool
        public var statuses: [String: Int]
        public var errors: [String: Int]
        public var backends: [String: Int]
        public var sendLagP99Ms: Double
        public var waitedForConnection: Int
        public var peakConnections: Int
        public var maxConnections: Int
        public var corrected: Latency
        public var service: Latency
    }

    /// The report as `-json` prints it.
    public var json: JSON {
        func latency(_ histogram: Histogram<UInt64>) -> JSON.Latency {
            func ms(_ value: UInt64) -> Double { Double(value) / 1_000 }
            return JSON.Latency(
                p50Ms: ms(histogram.valueAtPercentile(50)),
                p90Ms: ms(histogram.valueAtPercentile(90)),
                p99Ms: ms(histogram.valueAtPercentile(99)),
                p999Ms: ms(histogram.valueAtPercentile(99.9)),
                p9999Ms: ms(histogram.valueAtPercentile(99.99)),
                maxMs: ms(histogram.max),
                meanMs: histogram.mean / 1_000
            )
        }
        let closed = if case .closedLoop = self.configuration.pacing { true } else { false }
        return JSON(
            mode: closed ? "closed" : "open",
            transport: self.configuration.webSocket ? "websocket" : "http",
            clients: self.configuration.clients,
            askedRate: self.configuration.totalRate,
            achievedRate: self.achievedRate,
            sent: self.statistics.sent,
            completed: self.statistics.completed,
            elapsedSeconds: self.elapsed.seconds,
            interrupted: self.interrupted,
            statuses: Dictionary(uniqueKeysWithValues: self.statistics.statuses.map { (String($0.key), $0.value) }),
            errors: Dictionary(uniqueKeysWithValues: self.statistics.errors.map { ($0.key.rawValue, $0.value) }),
            backends: self.statistics.backends,
            sendLagP99Ms: Double(self.statistics.sendLag.valueAtPercentile(99)) / 1_000,
            waitedForConnection: self.statistics.waitedForConnection,
            peakConnections: self.statistics.peakConnections,
            maxConnections: self.configuration.connectionLimit,
            corrected: latency(self.statistics.corrected),
            service: latency(self.statistics.service)
        )
    }

    /// The report as text, for a terminal.
    public var text: String {
        let c = self.configuration
        let s = self.statistics
        var lines: [String] = []
        let target = "\(c.webSocket ? "ws://" : "")\(c.target.host):\(c.target.port)\(c.target.path)"
        switch c.pacing {
        case .openLoop(let rate, let arrival):
            lines.append(
                "open loop: \(c.clients) clients x \(Self.number(rate)) req/s = \(Self.number(rate * Double(c.clients))) req/s asked "
                    + "(\(arrival.rawValue)), target \(target)"
            )
        case .closedLoop(let connections):
            lines.append(
                "closed loop (wrk's model: latency counts from the send, so it hides queueing): \(connections) connections, "
                    + "target \(target)"
            )
        }
        if c.webSocket {
            lines.append("WebSocket: every request is a message over a long-lived connection and ends with its echo (status 101)")
        }
        if self.interrupted {
            lines.append("INTERRUPTED: figures cover the run until the interruption")
        }
        var rateLine = "requests:  \(s.sent) sent, \(s.completed) completed in \(Self.seconds(self.elapsed)); "
            + "achieved \(Self.number(self.achievedRate)) req/s"
        if let asked = c.totalRate {
            rateLine += " (\(Self.number(100 * self.achievedRate / asked))% of asked)"
        }
        lines.append(rateLine)
        if c.totalRate != nil {
            lines.append(
                "schedule:  requests went out " + Self.ms(s.sendLag.valueAtPercentile(50)).trimmingCharacters(in: .whitespaces)
                    + " ms (p50), " + Self.ms(s.sendLag.valueAtPercentile(99)).trimmingCharacters(in: .whitespaces)
                    + " ms (p99) after their due time"
            )
        }
        let statuses = s.statuses.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
        lines.append("status:    " + (statuses.isEmpty ? "none" : statuses.joined(separator: "  ")))
        let errors = s.errors.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue): \($0.value)" }
        lines.append("errors:    " + (errors.isEmpty ? "none" : errors.joined(separator: "  ")))
        lines.append(
            "pool:      peak \(s.peakConnections) of \(c.connectionLimit) connections; "
                + (s.waitedForConnection == 0
                    ? "no request waited for a connection"
                    : "\(s.waitedForConnection) requests waited for a connection (pool exhausted)")
        )
        if !s.backends.isEmpty {
            let total = Double(s.backends.values.reduce(0, +))
            let shares = s.backends.sorted { $0.key < $1.key }.map { "\($0.key) \(Self.number(100 * Double($0.value) / total))%" }
            lines.append("backends:  " + shares.joined(separator: "  "))
        }
        lines.append("")
        lines.append("latency (ms)   corrected     service")
        for p in Self.percentiles {
            let label = "p" + (p == p.rounded() ? String(Int(p)) : String(p))
            lines.append(
                label.padding(toLength: 12, withPad: " ", startingAt: 0)
                    + Self.ms(s.corrected.valueAtPercentile(p)) + Self.ms(s.service.valueAtPercentile(p))
            )
        }
        lines.append("max".padding(toLength: 12, withPad: " ", startingAt: 0) + Self.ms(s.corrected.max) + Self.ms(s.service.max))
        lines.append("corrected = done - due time (free of coordinated omission); service = done - sent")
        return lines.joined(separator: "\n")
    }

    private static func ms(_ micros: UInt64) -> String {
        let text = String(format: "%.3f", Double(micros) / 1_000)
        return String(repeating: " ", count: max(0, 12 - text.count)) + text
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(format: "%.1f", value)
    }

    private static func seconds(_ duration: Duration) -> String {
        String(format: "%.2fs", duration.seconds)
    }
}

extension LoadProgress {
    /// One progress line: elapsed, sent, rate, errors, p50 and p99 so far.
    public var line: String {
        let s = self.statistics
        let rate = Double(s.sent) / max(self.elapsed.seconds, 1e-9)
        return String(
            format: "%4.0fs  sent %d  %.0f req/s  errors %d  p50 %.2fms  p99 %.2fms",
            self.elapsed.seconds,
            s.sent,
            rate,
            s.failed,
            Double(s.corrected.valueAtPercentile(50)) / 1_000,
            Double(s.corrected.valueAtPercentile(99)) / 1_000
        )
    }
}
