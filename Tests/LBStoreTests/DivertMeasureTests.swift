import LBCore
import Testing

@testable import LBStore

@Suite("divert latency")
struct DivertMeasureTests {
    @Test("round robin over four that stops picking backend 2 at pick 400: diverted from the first pick whose windows hold under ten of its picks")
    func switchOver() {
        let picks = (0..<400).map { $0 % 4 } + (0..<2_000).map { [0, 1, 3][$0 % 3] }
        let found = DivertMeasure.divert(picks: picks, target: 2, fairShare: 0.25, window: 80)
        // Backend 2 is picked at 2, 6, … 398. A window from pick i holds its picks from i to 398: ten
        // from 362 (362, 366, … 398), nine from 363, under half of the fair 20; before 363, 91 picks (2 … 362).
        #expect(found.index == 363 && found.before == 91)
    }

    @Test("uniform random choices among four never divert, over 20,000 picks")
    func random() {
        var generator = SeededGenerator(seed: 4)
        let picks = (0..<20_000).map { _ in Int.random(in: 0..<4, using: &generator) }
        let found = DivertMeasure.divert(picks: picks, target: 1, fairShare: 0.25, window: 80)
        #expect(found.index == nil && abs(found.before - 5_000) < 300)
    }

    @Test("a weighted fair share: a backend of weight 1 among 1:2:1 is diverted under an eighth")
    func weighted() {
        // Its fair share is 1/4; after pick 800 it gets one pick in ten.
        let before = (0..<800).map { [0, 1, 1, 2][$0 % 4] }
        let after = (0..<3_000).map { $0 % 10 == 0 ? 0 : 1 + $0 % 2 }
        let found = DivertMeasure.divert(picks: before + after, target: 0, fairShare: 0.25, window: 60)
        #expect(found.index.map { (740...800).contains($0) } == true, "\(String(describing: found.index))")
        #expect(DivertMeasure.divert(picks: after, target: 0, fairShare: 0.1, window: 60).index == nil, "one in ten is its fair share there")
    }
}
