/// A configuration or scenario file that cannot be used: says where (file, line, field) and what is
/// wrong, in one line a user can act on.
///
/// `config.yml:14: services[0].backends[1].address: "9001" is not host:port, e.g. 127.0.0.1:9001`
public struct ConfigError: Error, Hashable, CustomStringConvertible {
    /// The file, as it was named.
    public let file: String
    /// The 1-based line of the value at fault (0 when the problem is the whole file).
    public let line: Int
    /// Where in the document: `services[0].backends[1].address`; empty for the whole file.
    public let field: String
    /// What is wrong, and what was expected.
    public let problem: String

    /// An error at `line` of `file`, in `field`, saying `problem`.
    public init(file: String, line: Int, field: String, problem: String) {
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem
    }

    public var description: String {
        let place = self.line > 0 ? "\(self.file):\(self.line)" : self.file
        return self.field.isEmpty ? "\(place): \(self.problem)" : "\(place): \(self.field): \(self.problem)"
    }
}
