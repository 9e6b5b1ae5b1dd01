/// Durations written as Go's `time.ParseDuration` reads them: `30s`, `1m30s`, `1.5h`, `250ms`, `100us`.
///
/// The tools LBLab's users come from (the Go balancers, vegeta, hey) take durations in this syntax, so
/// every flag and every configuration field that is a duration does too. The grammar is Go's: an
/// optional sign, then one or more decimal numbers each followed by a unit (`ns`, `us`, `µs`, `μs`,
/// `ms`, `s`, `m`, `h`); a bare `0` is zero. A number without a unit is refused, because a silent
/// default unit is how `-timeout 5` comes to mean five nanoseconds.
public enum GoDuration {
    /// The duration `text` denotes.
    public static func parse(_ text: String) throws(MalformedValue) -> Duration {
        var rest = Substring(text)
        var negative = false
        if let sign = rest.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            rest = rest.dropFirst()
        }
        if rest == "0" {
            return .zero
        }
        guard !rest.isEmpty else {
            throw MalformedValue(text: text, problem: "is empty; write a number and a unit, e.g. 30s")
        }
        var totalNanos: Double = 0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number != ".", number.filter({ $0 == "." }).count <= 1,
                let value = Double(number.hasPrefix(".") ? "0" + number : number)
            else {
                throw MalformedValue(text: text, problem: "has no number before \"\(rest)\"")
            }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            guard !unit.isEmpty else {
                throw MalformedValue(text: text, problem: "needs a unit after \(number), e.g. \(number)ms or \(number)s")
            }
            guard let scale = Self.nanosPerUnit[String(unit)] else {
                throw MalformedValue(
                    text: text,
                    problem: "has the unknown unit \"\(unit)\"; use ns, us, ms, s, m or h"
                )
            }
            rest = rest.dropFirst(unit.count)
            totalNanos += value * scale
        }
        guard totalNanos < 9.2e18 else {
            throw MalformedValue(text: text, problem: "is too long; the longest duration is about 292 years")
        }
        let nanos = Int64(totalNanos.rounded())
        return .nanoseconds(negative ? -nanos : nanos)
    }

    /// `duration` written the way Go's `Duration.String` writes it (`1m30s`, `250ms`, `1.5µs`), so that a
    /// value read from a flag prints back as the user wrote it.
    public static func format(_ duration: Duration) -> String {
        let nanos = duration.nanoseconds
        if nanos == 0 {
            return "0s"
        }
        let sign = nanos < 0 ? "-" : ""
        let magnitude = nanos.magnitude
        if magnitude < 1_000 {
            return "\(sign)\(magnitude)ns"
        }
        if magnitude < 1_000_000 {
            return sign + Self.decimal(magnitude, per: 1_000) + "µs"
        }
        if magnitude < 1_000_000_000 {
            return sign + Self.decimal(magnitude, per: 1_000_000) + "ms"
        }
        var text = sign
        let hours = magnitude / 3_600_000_000_000
        let minutes = magnitude / 60_000_000_000 % 60
        let secondNanos = magnitude % 60_000_000_000
        if hours > 0 {
            text += "\(hours)h"
        }
        if hours > 0 || minutes > 0 {
            text += "\(minutes)m"
        }
        return text + Self.decimal(secondNanos, per: 1_000_000_000) + "s"
    }

    /// `value / per` with as many decimals as needed and no trailing zeros.
    private static func decimal(_ value: UInt64, per: UInt64) -> String {
        let whole = value / per
        var fraction = value % per
        guard fraction > 0 else {
            return "\(whole)"
        }
        var digits = String(per).count - 1
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let padded = String(repeating: "0", count: digits - String(fraction).count) + String(fraction)
        return "\(whole).\(padded)"
    }

    private static let nanosPerUnit: [String: Double] = [
        "ns": 1,
        "us": 1e3,
        "µs": 1e3,  // U+00B5 micro sign
        "μs": 1e3,  // U+03BC Greek mu
        "ms": 1e6,
        "s": 1e9,
        "m": 60e9,
        "h": 3600e9,
    ]
}
