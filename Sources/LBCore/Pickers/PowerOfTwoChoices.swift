/// Power of two choices on in-flight requests (`power-of-two`; Envoy's `LEAST_REQUEST`, tower's
/// `p2c`): draw d (default 2) distinct eligible backends and send the request to the one with fewer
/// in-flight requests per unit of weight.
///
/// With n backends and requests that pile up, the fullest backend holds only ln ln n / ln d + O(1)
/// more than the mean, against Θ(√((m/n)·ln n)) for ``RandomPicker``; see ``PowerOfChoices``. O(d).
public struct PowerOfTwoChoices: SpecializedPicker {
    public var algorithm: Algorithm { .powerOfTwo }
    public var core: PowerOfChoices<InFlightLoad>

    /// A power-of-d-choices picker on in-flight requests.
    public init(draws: Int = 2, seed: UInt64 = 0) {
        self.core = PowerOfChoices<InFlightLoad>(algorithm: .powerOfTwo, signal: InFlightLoad(), draws: draws, seed: seed)
    }
}

