/// An HTTP/1.1 message that cannot be framed or read safely, and why.
public struct HTTPMalformed: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, in a few words ("bad Content-Length").
    public var reason: String
    /// Whether the head is refused for its size alone (a server answers 431, RFC 6585 §5).
    public var isTooLarge: Bool

    public init(_ reason: String, isTooLarge: Bool = false) {
        self.reason = reason
        self.isTooLarge = isTooLarge
    }

    public var description: String { self.reason }
}
