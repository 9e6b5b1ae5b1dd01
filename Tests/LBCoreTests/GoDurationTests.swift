import LBCore
import Testing

@Suite("Go-style durations")
struct GoDurationTests {
    @Test(
        "reads what Go's time.ParseDuration reads",
        arguments: [
            ("30s", Duration.seconds(30)),
            ("1m30s", .seconds(90)),
            ("1.5h", .seconds(5_400)),
            ("250ms", .milliseconds(250)),
            ("100us", .microseconds(100)),
            ("100µs", .microseconds(100)),
            ("100μs", .microseconds(100)),
            ("7ns", .nanoseconds(7)),
            ("2h45m10.5s", .milliseconds(9_910_500)),
            (".5s", .milliseconds(500)),
            ("0", .zero),
            ("-1.5s", .milliseconds(-1_500)),
            ("+2m", .seconds(120)),
        ]
    )
    func parses(text: String, expected: Duration) throws {
        #expect(try GoDuration.parse(text) == expected)
    }

    @Test(
        "refuses what Go refuses, saying what is wrong",
        arguments: [
            ("", "empty"),
            ("5", "needs a unit"),
            ("1m30", "needs a unit"),
            ("10sec", "unknown unit \"sec\""),
            ("ms", "no number"),
            ("1.2.3s", "no number"),
            ("-", "empty"),
        ]
    )
    func refuses(text: String, problem: String) {
        #expect {
            try GoDuration.parse(text)
        } throws: { error in
            "\(error)".contains(problem)
        }
    }

    @Test(
        "prints as Go's Duration.String does, and reads back",
        arguments: [
            (Duration.seconds(90), "1m30s"),
            (.milliseconds(250), "250ms"),
            (.microseconds(1_500), "1.5ms"),
            (.nanoseconds(1_500), "1.5µs"),
            (.nanoseconds(12), "12ns"),
            (.seconds(3_600), "1h0m0s"),
            (.milliseconds(61_250), "1m1.25s"),
            (.zero, "0s"),
            (.milliseconds(-2_500), "-2.5s"),
        ]
    )
    func formats(duration: Duration, text: String) throws {
        #expect(GoDuration.format(duration) == text)
        #expect(try GoDuration.parse(text) == duration)
    }
}
