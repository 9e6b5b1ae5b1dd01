#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The arithmetic of the peak-EWMA latency estimate (Finagle's `PeakEwma`, tower's `load::PeakEwma`).
///
/// A new sample above the estimate replaces it at once (the "peak": the estimate reacts to a slowdown
/// immediately); a sample below it is blended in with weight `1 - exp(-Δt/τ)`, where Δt is the time
/// since the previous update and τ the decay time. Reading the estimate later decays it toward zero
/// with the same factor, as if a zero-latency sample had arrived.
public enum PeakEWMAEstimate {
    /// `exp(-elapsed/decay)`: how much of the old estimate survives `elapsed` nanoseconds.
    public static func decayFactor(elapsedNanos: Double, decayNanos: Double) -> Double {
        guard decayNanos > 0 else { return 0 }
        return exp(-elapsedNanos / decayNanos)
    }

    /// The estimate after observing `sample`, given the `current` estimate last updated
    /// `elapsedNanos` ago.
    public static func update(current: Double, sample: Double, elapsedNanos: Double, decayNanos: Double) -> Double {
        if sample > current {
            return sample
        }
        let decay = self.decayFactor(elapsedNanos: elapsedNanos, decayNanos: decayNanos)
        return current * decay + sample * (1 - decay)
    }
}
