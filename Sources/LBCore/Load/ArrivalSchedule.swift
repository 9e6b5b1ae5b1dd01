#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a client's requests are spaced.
public enum ArrivalProcess: String, Sendable, Hashable, CaseIterable, Codable {
    /// Exactly every 1/rate, each client with its own phase, so clients do not fire in lock step.
    case constant
    /// Exponential gaps with mean 1/rate: a Poisson process per client, and so in total.
    case poisson
}

/// The open-loop schedule: when each request of each client is due, fixed in advance whatever
/// happens to earlier requests (wrk2's and vegeta's model, DESIGN §7).
///
/// Clients are merged in order of due time. Every client has its own stream of random gaps derived
/// from the seed, so the schedule of one client does not depend on how many others there are.
public struct ArrivalSchedule: Sendable {
    /// One due request.
    public struct Arrival: Sendable, Hashable {
        /// The client that sends it.
        public var client: Int
        /// When it is due, in nanoseconds from the start of the load.
        public var dueNanos: Int64
    }

    private let process: ArrivalProcess
    private let meanGapNanos: Double
    private let endNanos: Int64
    private var remaining: Int
    private var generators: [SeededGenerator]
    /// The client of each slot of ``generators``.
    private let clients: [Int]
    /// A binary min-heap of (due, client).
    private var heap: [(due: Int64, client: Int)] = []

    /// A schedule of `clients` clients each sending `ratePerClient` requests per second, for
    /// requests due before `duration` (if given) and at most `limit` requests (if given).
    public init(
        clients: [Int],
        ratePerClient: Double,
        process: ArrivalProcess,
        duration: Duration?,
        limit: Int?,
        seed: UInt64
    ) {
        precondition(ratePerClient > 0 && ratePerClient.isFinite, "a schedule needs a positive rate")
        self.process = process
        self.meanGapNanos = 1e9 / ratePerClient
        self.endNanos = duration?.nanoseconds ?? .max
        self.remaining = limit ?? .max
        self.generators = clients.map { SeededGenerator.derived(seed: seed, stream: UInt64($0)) }
        self.clients = clients
        let totalClients = max(1, (clients.max() ?? 0) + 1)
        for (slot, client) in clients.enumerated() {
            let first: Double
            switch process {
            case .constant:
                // Phases spread evenly over one gap, in client order.
                first = self.meanGapNanos * Double(client) / Double(totalClients)
            case .poisson:
                first = self.exponentialGap(slot)
            }
            self.push((Self.nanos(first), slot))
        }
    }

    /// The next due request, or `nil` when the schedule is over.
    public mutating func next() -> Arrival? {
        guard self.remaining > 0, let top = self.heap.first, top.due < self.endNanos else { return nil }
        self.remaining -= 1
        let gap: Double
        switch self.process {
        case .constant: gap = self.meanGapNanos
        case .poisson: gap = self.exponentialGap(top.client)
        }
        // A rate so low that the next one is due past Int64's nanoseconds (292 years) ends the client.
        let (due, overflow) = top.due.addingReportingOverflow(Self.nanos(gap.rounded()))
        self.replaceTop((overflow ? .max : due, top.client))
        return Arrival(client: self.clients[top.client], dueNanos: top.due)
    }

    /// When the next request is due, without taking it.
    public var nextDueNanos: Int64? {
        guard self.remaining > 0, let top = self.heap.first, top.due < self.endNanos else { return nil }
        return top.due
    }

    /// `value` (not negative) in whole nanoseconds, `Int64.max` when it is past them.
    private static func nanos(_ value: Double) -> Int64 {
        value < 9.2e18 ? Int64(value) : .max
    }

    private mutating func exponentialGap(_ slot: Int) -> Double {
        -self.meanGapNanos * log(1 - self.generators[slot].unitInterval())
    }

    // MARK: Heap

    private static func less(_ a: (due: Int64, client: Int), _ b: (due: Int64, client: Int)) -> Bool {
        a.due != b.due ? a.due < b.due : a.client < b.client
    }

    private mutating func push(_ element: (due: Int64, client: Int)) {
        self.heap.append(element)
        var child = self.heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.less(self.heap[child], self.heap[parent]) else { break }
            self.heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func replaceTop(_ element: (due: Int64, client: Int)) {
        self.heap[0] = element
        var parent = 0
        let count = self.heap.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { return }
            var smallest = left
            if left + 1 < count && Self.less(self.heap[left + 1], self.heap[left]) { smallest = left + 1 }
            guard Self.less(self.heap[smallest], self.heap[parent]) else { return }
            self.heap.swapAt(smallest, parent)
            parent = smallest
        }
    }
}
