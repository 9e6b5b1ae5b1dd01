import Testing

@testable import LBProxy

@Suite("Order of a tick's upstream flushes (StableGrouping)")
struct TickFlushOrderTests {
    private func grouped(_ keys: String) -> String {
        // Each item is a key letter and its place in the tick, so that the order within a group shows.
        var items = keys.enumerated().map { (key: $0.element, place: $0.offset) }
        var grouping = StableGrouping<(key: Character, place: Int), Character>()
        grouping.group(&items) { $0.key }
        return items.map { "\($0.key)\($0.place)" }.joined(separator: " ")
    }

    @Test("round robin's interleaved writes come out one backend at a time, in the order each first appeared")
    func interleaved() {
        #expect(grouped("abcabcab") == "a0 a3 a6 b1 b4 b7 c2 c5")
        #expect(grouped("cabbac") == "c0 c5 a1 a4 b2 b3")
    }

    @Test("lists already grouped, and short ones, stay as they are")
    func unchanged() {
        #expect(grouped("") == "")
        #expect(grouped("ba") == "b0 a1")
        #expect(grouped("aaabbc") == "a0 a1 a2 b3 b4 c5")
        #expect(grouped("abcd") == "a0 b1 c2 d3")
    }

    @Test("a long tick's writes over many backends, grouped by one reused grouping, call after call")
    func many() {
        var grouping = StableGrouping<(key: Int, place: Int), Int>()
        for round in 0..<3 {
            // 10,000 writes round robin over 100 backends, starting at a different backend each call.
            var items = (0..<10_000).map { (key: ($0 + round * 7) % 100, place: $0) }
            grouping.group(&items) { $0.key }
            let expected = (0..<100).flatMap { first in
                stride(from: first, to: 10_000, by: 100).map { (key: (first + round * 7) % 100, place: $0) }
            }
            #expect(items.map(\.key) == expected.map(\.key))
            #expect(items.map(\.place) == expected.map(\.place))
        }
    }
}
