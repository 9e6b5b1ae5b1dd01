import Foundation
import Testing

@testable import LBExperiment

@Suite("knees and service-level searches")
struct KneedleTests {
    @Test("a curve flat to 0.6 and steep after has its knee at 0.6; a straight line or a concave curve has none")
    func knee() throws {
        let x = stride(from: 0.1, through: 1.0, by: 0.1).map { ($0 * 10).rounded() / 10 }
        let bent = x.map { $0 <= 0.6 ? $0 : 0.6 + 10 * ($0 - 0.6) }
        let knee = try #require(Kneedle.knee(x: x, y: bent))
        #expect(knee.x == 0.6 && knee.index == 5)
        #expect(Kneedle.knee(x: x, y: x.map { 3 * $0 + 1 }) == nil)
        #expect(Kneedle.knee(x: [1, 2, 3, 4], y: [1, 1.1, 1.2, 9])?.x == 3, "flat to 3, then steep")
        #expect(Kneedle.knee(x: x, y: x.map { $0.squareRoot() }) == nil, "a concave curve does not turn upward")
        #expect(Kneedle.knee(x: [1, 2], y: [1, 5]) == nil)
        #expect(Kneedle.knee(x: [1, 3, 2], y: [1, 2, 3]) == nil, "x must increase")
    }

    /// An M/M/1 queue's mean sojourn 1/(μ − λ) against ρ: with ρ from 0.1 to 0.95 in steps of 0.05 the
    /// scaled difference x − y is largest where the curve's slope in scaled units is 1, which for
    /// y = 1/(1 − ρ) over this range is at ρ ≈ 0.8.
    @Test("an M/M/1 delay curve's knee is where its scaled slope passes 1 (ρ ≈ 0.8)")
    func queueingKnee() throws {
        let rho = stride(from: 0.1, through: 0.951, by: 0.05).map { ($0 * 100).rounded() / 100 }
        let delay = rho.map { 1 / (1 - $0) }
        let knee = try #require(Kneedle.knee(x: rho, y: delay))
        // Slope in scaled units: (dy/dρ)·(Δρ/Δy) = 1 at (1 − ρ)² = Δρ/Δy = 0.85/(20 − 1.11): ρ = 0.788.
        #expect(abs(knee.x - 0.8) < 0.051, "\(knee)")
    }

    @Test("the service level's load: interpolated to the crossing, or bounded when all points pass or fail")
    func serviceLevel() {
        let load = [100.0, 200, 300, 400]
        let latency = [10.0, 20, 40, 120]
        let errors = [0.0, 0, 0, 0.2]
        // p99 ≤ 60: holds to 300, crosses between 300 (40) and 400 (120) a quarter of the way.
        #expect(ServiceLevelSearch.interpolate(load: load, latency: latency, errorRate: errors, latencyTarget: 60, errorTarget: 0.5) == .interpolated(325, between: 300, and: 400))
        // Errors reach 1% a twentieth of the way (0 → 0.2), before the latency does.
        #expect(ServiceLevelSearch.interpolate(load: load, latency: latency, errorRate: errors, latencyTarget: 200, errorTarget: 0.01) == .interpolated(305, between: 300, and: 400))
        #expect(ServiceLevelSearch.interpolate(load: load, latency: latency, errorRate: errors, latencyTarget: 500, errorTarget: 0.5) == .atLeast(400))
        #expect(ServiceLevelSearch.interpolate(load: load, latency: latency, errorRate: errors, latencyTarget: 5, errorTarget: 0.5) == .below(100))
        // A point that fails after one that passes, with a later one passing again: the first failure counts.
        #expect(ServiceLevelSearch.interpolate(load: [1, 2, 3], latency: [1, 9, 1], errorRate: [0, 0, 0], latencyTarget: 5, errorTarget: 1) == .interpolated(1.5, between: 1, and: 2))
    }
}
