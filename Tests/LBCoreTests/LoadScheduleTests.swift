import LBCore
import Testing

@Suite("Open-loop schedule, Zipf keys, client addresses, WebSocket load rules")
struct LoadScheduleTests {
    func drain(_ schedule: ArrivalSchedule) -> [ArrivalSchedule.Arrival] {
        var schedule = schedule
        var arrivals: [ArrivalSchedule.Arrival] = []
        while let next = schedule.next() { arrivals.append(next) }
        return arrivals
    }

    @Test("constant: every client exactly every 1/rate, phases spread, merged in due order")
    func constant() {
        let arrivals = drain(
            ArrivalSchedule(clients: [0, 1, 2, 3], ratePerClient: 10, process: .constant, duration: .seconds(2), limit: nil, seed: 1)
        )
        #expect(arrivals.count == 80)
        #expect(arrivals.map(\.dueNanos) == arrivals.map(\.dueNanos).sorted())
        for client in 0..<4 {
            let due = arrivals.filter { $0.client == client }.map(\.dueNanos)
            #expect(due.count == 20)
            #expect(due.first == Int64(client) * 25_000_000)
            #expect(zip(due, due.dropFirst()).allSatisfy { $1 - $0 == 100_000_000 })
        }
        #expect(arrivals.allSatisfy { $0.dueNanos < 2_000_000_000 })
    }

    @Test("poisson: per-client rates sum to the total, gaps are exponential (mean 1/rate, CV 1)")
    func poisson() {
        // 50 clients × 20 req/s × 100 s: 100,000 expected; Poisson σ = √100000 ≈ 316, ±5σ.
        let arrivals = drain(
            ArrivalSchedule(clients: Array(0..<50), ratePerClient: 20, process: .poisson, duration: .seconds(100), limit: nil, seed: 7)
        )
        #expect(abs(arrivals.count - 100_000) <= 1_581)
        #expect(arrivals.map(\.dueNanos) == arrivals.map(\.dueNanos).sorted())
        var gaps: [Double] = []
        for client in 0..<50 {
            let due = arrivals.filter { $0.client == client }.map(\.dueNanos)
            // Each client: Poisson(2000), σ ≈ 45; ±5σ.
            #expect(abs(due.count - 2_000) <= 224)
            gaps += zip(due, due.dropFirst()).map { Double($1 - $0) / 1e6 }
        }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        let variance = gaps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gaps.count)
        // Mean 50 ms, standard error 50/√100000 ≈ 0.16 ms; the CV of an exponential is 1.
        #expect(abs(mean - 50) < 1)
        #expect(abs(variance.squareRoot() / mean - 1) < 0.02)
    }

    @Test("any positive rate, however far from sensible, gives a schedule in due order within its duration", arguments: ArrivalProcess.allCases)
    func extremeRates(process: ArrivalProcess) {
        for rate in [Double.leastNonzeroMagnitude, 1e-300, 1e-12, 1e-9, 0.5, 1e300, Double.greatestFiniteMagnitude] {
            var schedule = ArrivalSchedule(clients: [0, 1, 2], ratePerClient: rate, process: process, duration: .seconds(1), limit: 1_000, seed: 3)
            var last: Int64 = 0
            var count = 0
            while let arrival = schedule.next() {
                #expect(arrival.dueNanos >= last && arrival.dueNanos < 1_000_000_000, "rate \(rate): \(arrival)")
                last = arrival.dueNanos
                count += 1
            }
            if rate > 1 { #expect(count == 1_000, "rate \(rate): the limit ends it") }
        }
    }

    @Test("a request limit ends the schedule after exactly that many")
    func limit() {
        let arrivals = drain(
            ArrivalSchedule(clients: Array(0..<3), ratePerClient: 1_000, process: .poisson, duration: nil, limit: 1_234, seed: 2)
        )
        #expect(arrivals.count == 1_234)
    }

    @Test("a client's arrivals do not depend on the other clients")
    func independentStreams() {
        let alone = drain(
            ArrivalSchedule(clients: [5], ratePerClient: 50, process: .poisson, duration: .seconds(5), limit: nil, seed: 3)
        )
        let together = drain(
            ArrivalSchedule(clients: [1, 5, 9], ratePerClient: 50, process: .poisson, duration: .seconds(5), limit: nil, seed: 3)
        ).filter { $0.client == 5 }
        #expect(alone == together)
    }

    @Test("Zipf keys follow 1/(k+1)^s; s = 0 is uniform")
    func zipf() {
        let keys = ZipfKeys(count: 100, exponent: 1)
        // H(100) = 5.187…; key 0 carries 1/H ≈ 19.3% of the traffic.
        #expect(abs(keys.probability(of: 0) - 0.19277) < 1e-4)
        var generator = SeededGenerator(seed: 11)
        var counts = Array(repeating: 0, count: 100)
        let draws = 200_000
        for _ in 0..<draws { counts[keys.next(using: &generator)] += 1 }
        for k in [0, 1, 9, 99] {
            let p = keys.probability(of: k)
            let sigma = (Double(draws) * p * (1 - p)).squareRoot()
            #expect(abs(Double(counts[k]) - Double(draws) * p) <= 5 * sigma, "key \(k): \(counts[k])")
        }
        let uniform = ZipfKeys(count: 10, exponent: 0)
        #expect((0..<10).allSatisfy { abs(uniform.probability(of: $0) - 0.1) < 1e-12 })
    }

    @Test("client addresses: TEST-NET-3, then TEST-NET-2 and TEST-NET-1 past 254, then 198.18.0.0/15 past 762")
    func addresses() {
        #expect(ClientAddresses.address(of: 0) == "203.0.113.1")
        #expect(ClientAddresses.address(of: 253) == "203.0.113.254")
        #expect(ClientAddresses.address(of: 254) == "198.51.100.1")
        #expect(ClientAddresses.address(of: 508) == "192.0.2.1")
        #expect(ClientAddresses.address(of: 761) == "192.0.2.254")
        #expect(ClientAddresses.address(of: 762) == "198.18.0.1")
        #expect(ClientAddresses.address(of: 762 + 254) == "198.18.0.255")
        #expect(ClientAddresses.address(of: 762 + 255) == "198.18.1.0")
        #expect(ClientAddresses.address(of: ClientAddresses.capacity - 1) == "198.19.255.254")
        #expect(ClientAddresses.capacity == 762 + 131_070)
    }

    @Test("100,000 clients have distinct addresses, each inside TEST-NET-1, 2, 3 or 198.18.0.0/15")
    func manyAddresses() throws {
        let all = (0..<100_000).map(ClientAddresses.address(of:))
        #expect(Set(all).count == 100_000)
        // Checked against the ranges by AddressRange, independently of ClientAddresses.contains.
        let ranges = try ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24", "198.18.0.0/15"].map { try AddressRange(parsing: $0) }
        #expect(all.allSatisfy { address in ranges.contains { $0.contains(address) } })
        #expect(all.allSatisfy(ClientAddresses.contains))
        for outside in ["127.0.0.1", "203.0.113.0", "203.0.113.255", "198.18.0.0", "198.19.255.255", "198.20.0.1", "198.17.255.255", "10.0.0.1", "198.18.0", "198.18.0.1.2", "198.18.x.1"] {
            #expect(!ClientAddresses.contains(outside), "\(outside)")
        }
    }

    @Test("host:port addresses", arguments: [
        ("127.0.0.1:9001", "127.0.0.1", 9001), ("[::1]:80", "::1", 80), (":8080", "127.0.0.1", 8080),
        ("localhost:0", "localhost", 0),
    ])
    func hostPort(text: String, host: String, port: Int) throws {
        let address = try HostPort(parsing: text)
        #expect(address.host == host && address.port == port && address.isLoopback)
    }

    @Test("bad host:port addresses say what is expected", arguments: ["127.0.0.1", "::1:80", "h:99999", "h:x"])
    func badHostPort(text: String) {
        #expect(throws: MalformedValue.self) { try HostPort(parsing: text) }
    }

    @Test("a WebSocket load opens with GET, in any case, and takes no request keys")
    func webSocketLoad() {
        #expect(WebSocketLoad.methodProblem("GET") == nil)
        #expect(WebSocketLoad.methodProblem("get") == nil)
        for method in ["POST", "HEAD", "PUT", ""] {
            #expect(WebSocketLoad.methodProblem(method) == "a WebSocket opens with GET", "\(method)")
        }
        #expect(WebSocketLoad.keysProblem.contains("X-LBLab-Key"))
    }
}
