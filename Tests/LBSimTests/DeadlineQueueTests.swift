import Testing

@testable import LBSim

/// The simulator's queue of timeouts: a ring that grows, wraps around and is compacted in place; each
/// test checks it against a plain array doing the same.
@Suite("simulator: deadline queue")
struct DeadlineQueueTests {
    @Test("deadlines come out in the order they went in, across growth and wrap-around")
    func order() {
        var queue = DeadlineQueue<Int>()
        var model: [(Int64, Int)] = []
        var time: Int64 = 0
        var next = 0
        // Take one for every two added at first (the ring grows while its head moves), then drain
        // slower than it fills, then empty it: the ring wraps with its head anywhere.
        for round in 0..<6_000 {
            let adds = round < 3_000 ? 2 : 1
            for _ in 0..<adds {
                time += 7
                queue.append(time, next)
                model.append((time, next))
                next += 1
            }
            if round % 3 != 0 || round >= 3_000 {
                #expect(queue.next == model.first?.0)
                let taken = queue.pop()
                #expect(taken == model.removeFirst().1)
            }
        }
        while let first = model.first {
            #expect(queue.next == first.0)
            #expect(queue.pop() == first.1)
            model.removeFirst()
        }
        #expect(queue.count == 0)
        #expect(queue.next == nil)
    }

    @Test("compacting keeps exactly the unsettled deadlines, in order, once there are enough to look at")
    func compaction() {
        var queue = DeadlineQueue<Int>()
        // Move the head first, so that the kept entries are written over a wrapped ring.
        for value in 0..<700 { queue.append(Int64(value), value) }
        for _ in 0..<700 { _ = queue.pop() }
        for value in 700..<6_000 { queue.append(Int64(value), value) }
        #expect(queue.count == 5_300)
        // Few enough: nothing is looked at.
        queue.compact(live: 1_000) { _ in true }
        #expect(queue.count == 5_300)
        // Every third one is still live.
        queue.compact(live: 100) { $0 % 3 != 0 }
        let kept = (700..<6_000).filter { $0 % 3 == 0 }
        #expect(queue.count == kept.count)
        #expect(queue.next == Int64(kept[0]))
        var out: [Int] = []
        while queue.count > 0 { out.append(queue.pop()) }
        #expect(out == kept)
        #expect(queue.next == nil)
    }
}
