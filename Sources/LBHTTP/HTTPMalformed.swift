/// An HTTP/1.1 message that cannot be framed or read safely, and why.
public struct HTTPMalformed: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, in a few words ("bad Content-Length").
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { self.reason }
}
