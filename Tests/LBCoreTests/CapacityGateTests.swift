import Testing

import LBCore

@Suite("Capacity gate")
struct CapacityGateTests {
    @Test("serves up to capacity, queues in arrival order, hands each freed place to the next in line")
    func fifo() {
        var gate = CapacityGate<Int>(capacity: 2, queueLimit: nil)
        #expect(gate.requestArrived(1) == .serve)
        #expect(gate.requestArrived(2) == .serve)
        #expect(gate.requestArrived(3) == .queued)
        #expect(gate.requestArrived(4) == .queued)
        #expect(gate.serving == 2 && gate.queued == 2)
        #expect(gate.requestFinished() == 3)
        #expect(gate.serving == 2 && gate.queued == 1)
        #expect(gate.requestFinished() == 4)
        #expect(gate.requestFinished() == nil)
        #expect(gate.requestFinished() == nil)
        #expect(gate.serving == 0 && gate.queued == 0)
    }

    @Test("refuses beyond the queue limit, and a limit of 0 means no waiting at all")
    func queueLimit() {
        var gate = CapacityGate<Int>(capacity: 1, queueLimit: 1)
        #expect(gate.requestArrived(1) == .serve)
        #expect(gate.requestArrived(2) == .queued)
        #expect(gate.requestArrived(3) == .refuse)
        var strict = CapacityGate<Int>(capacity: 1, queueLimit: 0)
        #expect(strict.requestArrived(1) == .serve)
        #expect(strict.requestArrived(2) == .refuse)
    }

    @Test("without a capacity every request is served at once")
    func unlimited() {
        var gate = CapacityGate<Int>(capacity: nil, queueLimit: 0)
        for i in 0..<10_000 { #expect(gate.requestArrived(i) == .serve) }
        #expect(gate.serving == 10_000)
    }
}
