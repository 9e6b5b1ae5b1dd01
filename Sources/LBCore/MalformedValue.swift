/// A value written in a flag or a file that cannot be read: a duration, a latency model, an address.
///
/// Says which text and what is wrong with it; the caller adds where it was (the flag, or the file,
/// line and field), so the whole message points at the one thing to fix.
public struct MalformedValue: Error, Hashable, CustomStringConvertible {
    /// The text that was given.
    public let text: String
    /// What is wrong with it, as the end of a sentence that starts with the quoted text.
    public let problem: String

    /// An error about `text`, saying `problem`.
    public init(text: String, problem: String) {
        self.text = text
        self.problem = problem
    }

    public var description: String { "\"\(self.text)\" \(self.problem)" }
}
