public import ArgumentParser

extension NameSpecification {
    /// A long option accepted both as `--name` and, as Go tools (wrk, hey, vegeta, the Go balancers)
    /// spell it, `-name`.
    public static func goStyle(_ name: String) -> NameSpecification {
        [.customLong(name), .customLong(name, withSingleDash: true)]
    }
}
