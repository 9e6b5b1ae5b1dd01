import LBCore
import LBTesting
import Testing

/// The readers of the values flags and files hold (durations, addresses, networks, latency models),
/// under values mutated at random (fixed seeds): each mutant is read or refused, never trapped on, and
/// whatever is read prints back as text that reads to the same value.
@Suite("Values under random mutation")
struct ValueMutationTests {
    /// Reads 2,000 mutants of each of `seeds` with `read`, hands each value read to `check` with the
    /// text it was read from, and returns how many were read.
    static func readMutants<Value>(
        of seeds: [String],
        seed: UInt64,
        _ read: (String) throws -> Value,
        check: (String, Value) -> Void
    ) -> Int {
        var generator = SeededGenerator(seed: seed)
        var count = 0
        for round in 0..<(2_000 * seeds.count) {
            let text = String(decoding: Mutation.mutated(Array(seeds[round % seeds.count].utf8), using: &generator), as: UTF8.self)
            guard let value = try? read(text) else { continue }
            count += 1
            check(text, value)
        }
        return count
    }

    @Test("durations in Go's syntax")
    func durations() {
        let read = Self.readMutants(of: ["1m30s", "1.5h", "250ms", "-100us", "0", "2h45m0.5s", "1µs"], seed: 0xD0A7, GoDuration.parse) { text, duration in
            let printed = GoDuration.format(duration)
            #expect((try? GoDuration.parse(printed)) == duration, "\(String(reflecting: text)) is \(duration), printed \(printed)")
        }
        #expect(read > 1_000, "\(read)")
    }

    @Test("host:port addresses")
    func addresses() {
        let seeds = ["127.0.0.1:9001", "[::1]:8080", "localhost:80", ":9001", "[2001:db8::7]:65535"]
        let read = Self.readMutants(of: seeds, seed: 0xADD2, HostPort.init(parsing:)) { text, address in
            #expect((try? HostPort(parsing: address.description)) == address, "\(String(reflecting: text)) printed \(address)")
        }
        #expect(read > 1_000, "\(read)")
    }

    @Test("networks: each read contains the address it was written with")
    func networks() {
        let seeds = ["10.0.0.0/8", "::1/128", "192.168.1.7", "2001:db8::/32", "::ffff:10.1.2.3/120"]
        let read = Self.readMutants(of: seeds, seed: 0xC1D2, AddressRange.init(parsing:)) { text, range in
            // The proxy tests every X-Forwarded-For entry of a trusted peer against its ranges this way.
            let address = String(text.prefix { $0 != "/" })
            #expect(range.contains(address), "\(String(reflecting: text)) does not contain \(String(reflecting: address))")
        }
        #expect(read > 500, "\(read)")
    }

    @Test("latency models, whose samples and mean are durations however wide their spread")
    func latencyModels() {
        var generator = SeededGenerator(seed: 1)
        let seeds = ["5ms", "uniform(1ms,10ms)", "exponential(5ms)", "lognormal(5ms,50ms)", "fixed(2ms)", "lognormal(1ms,24h)", "exp(2000000h)"]
        let read = Self.readMutants(of: seeds, seed: 0x1A7E, LatencyModel.init(parsing:)) { text, model in
            #expect((try? LatencyModel(parsing: model.description)) == model, "\(String(reflecting: text)) printed \(model)")
            #expect(model.mean >= .zero)
            for _ in 0..<8 { #expect(model.sample(using: &generator) >= .zero, "\(model)") }
        }
        #expect(read > 500, "\(read)")
    }
}
