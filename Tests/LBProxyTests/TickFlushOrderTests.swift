import Testing

@testable import LBProxy

@Suite("Order of a tick's upstream flushes")
struct TickFlushOrderTests {
    private func grouped(_ keys: String) -> String {
        // Each item is a key letter and its place in the tick, so that the order within a group shows.
        var items = keys.enumerated().map { (key: $0.element, place: $0.offset) }
        LoopContext.groupByFirstAppearance(&items) { $0.key }
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
}
