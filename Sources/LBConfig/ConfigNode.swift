import Foundation
public import LBCore
import Yams

/// A value of a YAML document with where it came from: the file, its line, and its path from the root
/// (`services[0].backends[1].address`). Reading it as a type either returns the value or throws a
/// ``ConfigError`` that names all three.
///
/// The readers are strict on purpose: a mapping names the keys it knows and refuses the others
/// (a misspelt `intervall:` is an error, not a silently ignored setting), a duration needs its unit,
/// and a number out of range says what the range is.
public struct ConfigNode {
    let node: Node
    /// The file the value is in.
    public let file: String
    /// The value's path from the document's root.
    public let field: String

    /// The 1-based line the value starts on.
    public var line: Int { self.node.mark?.line ?? 0 }

    /// The text of the file at `path`, which must be readable UTF-8.
    public static func text(ofFile path: String) throws(ConfigError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: 0, field: "", problem: "cannot be read (no such file, or not allowed)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 0, field: "", problem: "is not UTF-8 text")
        }
        return text
    }

    /// Parses `text`, the contents of `file`, as one YAML document. An empty document is an empty
    /// mapping.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> ConfigNode {
        do {
            let root = try Yams.compose(yaml: text) ?? Node.mapping(Node.Mapping([]))
            return ConfigNode(node: root, file: file, field: "")
        } catch let error as YamlError {
            throw Self.error(error, file: file)
        } catch {
            throw ConfigError(file: file, line: 0, field: "", problem: "is not YAML: \(error)")
        }
    }

    private static func error(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return ConfigError(file: file, line: mark.line, field: "", problem: "is not valid YAML: \(problem)")
        case .reader(let problem, let offset, let value, let yaml):
            // A character the YAML reader refuses (a control character, say): its line, counted from the
            // byte offset it reports, and the character itself, which may not show when printed.
            let line = offset.map { offset in yaml.utf8.prefix(offset).reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) } } ?? 0
            let hex = String(value, radix: 16, uppercase: true)
            let character = value >= 0 ? " (U+\(String(repeating: "0", count: max(0, 4 - hex.count)))\(hex))" : ""
            return ConfigError(file: file, line: line, field: "", problem: "is not valid YAML: \(problem)\(character)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return ConfigError(file: file, line: context.mark.line, field: "", problem: "\(keys) appears twice in one mapping")
        default:
            return ConfigError(file: file, line: 0, field: "", problem: "is not valid YAML: \(error)")
        }
    }

    /// An error about this value.
    public func error(_ problem: String) -> ConfigError {
        ConfigError(file: self.file, line: self.line, field: self.field, problem: problem)
    }

    private var kind: String {
        switch self.node {
        case .scalar: "a single value"
        case .mapping: "a mapping (key: value lines)"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    // MARK: Structure

    /// This value as a mapping whose keys are all among `keys`.
    public func mapping(keys: [String]) throws(ConfigError) -> ConfigMapping {
        guard case .mapping(let mapping) = self.node else {
            throw self.error("expected a mapping with keys \(keys.joined(separator: ", ")), found \(self.kind)")
        }
        var entries: [(key: String, value: ConfigNode)] = []
        for (key, value) in mapping {
            guard let name = key.scalar?.string else {
                throw ConfigNode(node: key, file: self.file, field: self.field).error("a key must be a plain word")
            }
            let child = ConfigNode(node: value, file: self.file, field: self.child(name))
            guard keys.contains(name) else {
                let place = ConfigNode(node: key, file: self.file, field: self.child(name))
                throw place.error("unknown key; expected one of: \(keys.joined(separator: ", "))")
            }
            entries.append((name, child))
        }
        return ConfigMapping(owner: self, entries: entries)
    }

    /// This value as a list (a single value reads as a list of one when `single` is set).
    public func sequence(allowingSingle single: Bool = false) throws(ConfigError) -> [ConfigNode] {
        switch self.node {
        case .sequence(let sequence):
            return sequence.enumerated().map { index, node in
                ConfigNode(node: node, file: self.file, field: "\(self.field)[\(index)]")
            }
        case .scalar where single:
            return [self]
        default:
            throw self.error("expected a list, found \(self.kind)")
        }
    }

    private func child(_ key: String) -> String {
        self.field.isEmpty ? key : "\(self.field).\(key)"
    }

    // MARK: Scalars

    /// The value's text, for a single value.
    public func string() throws(ConfigError) -> String {
        guard case .scalar(let scalar) = self.node else {
            throw self.error("expected a single value, found \(self.kind)")
        }
        return scalar.string
    }

    /// A whole number in `range`.
    public func int(in range: ClosedRange<Int> = Int.min...Int.max) throws(ConfigError) -> Int {
        let text = try self.string()
        guard let value = Int(text.replacingUnderscores) else {
            throw self.error("\"\(text)\" is not a whole number")
        }
        guard range.contains(value) else { throw self.error(Self.outOfRange(value, range)) }
        return value
    }

    /// A number in `range`.
    public func double(in range: ClosedRange<Double> = -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude)
        throws(ConfigError) -> Double
    {
        let text = try self.string()
        guard let value = Double(text.replacingUnderscores), value.isFinite else {
            throw self.error("\"\(text)\" is not a number")
        }
        guard range.contains(value) else { throw self.error(Self.outOfRange(value, range)) }
        return value
    }

    /// `true` or `false` (also `yes`/`no`, `on`/`off`).
    public func bool() throws(ConfigError) -> Bool {
        let text = try self.string()
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw self.error("\"\(text)\" is not true or false")
        }
    }

    /// A duration in Go's syntax (`250ms`, `1m30s`): the unit is required, and it must be at least
    /// `minimum`.
    public func duration(atLeast minimum: Duration = .zero) throws(ConfigError) -> Duration {
        let text = try self.string()
        if Double(text) != nil {
            throw self.error("\"\(text)\" needs a unit, e.g. \(text)s or \(text)ms")
        }
        let value: Duration
        do {
            value = try GoDuration.parse(text)
        } catch {
            throw self.error("\(error)")
        }
        guard value >= minimum else {
            throw self.error("must be at least \(GoDuration.format(minimum)), got \(text)")
        }
        return value
    }

    /// A `host:port` address.
    public func hostPort() throws(ConfigError) -> HostPort {
        let text = try self.string()
        do {
            return try HostPort(parsing: text)
        } catch {
            throw self.error("\(error)")
        }
    }

    /// One of `choices`, as written.
    public func choice(_ choices: [String]) throws(ConfigError) -> String {
        let text = try self.string()
        guard choices.contains(text) else {
            throw self.error("\"\(text)\" is not one of: \(choices.joined(separator: ", "))")
        }
        return text
    }

    /// Reads the value with `parse`, turning a ``MalformedValue`` into an error at this value.
    public func parsed<T>(_ parse: (String) throws(MalformedValue) -> T) throws(ConfigError) -> T {
        let text = try self.string()
        do {
            return try parse(text)
        } catch {
            throw self.error("\(error)")
        }
    }

    private static func outOfRange(_ value: Int, _ range: ClosedRange<Int>) -> String {
        range.upperBound == .max
            ? "must be at least \(range.lowerBound), got \(value)"
            : "must be between \(range.lowerBound) and \(range.upperBound), got \(value)"
    }

    private static func outOfRange(_ value: Double, _ range: ClosedRange<Double>) -> String {
        range.upperBound == .greatestFiniteMagnitude
            ? "must be at least \(range.lowerBound), got \(value)"
            : "must be between \(range.lowerBound) and \(range.upperBound), got \(value)"
    }
}

/// The keys of one mapping, read one by one; see ``ConfigNode/mapping(keys:)``.
public struct ConfigMapping {
    /// The mapping itself, for errors about it as a whole.
    public let owner: ConfigNode
    let entries: [(key: String, value: ConfigNode)]

    /// The value of `key`, if it is there.
    public subscript(_ key: String) -> ConfigNode? {
        self.entries.first { $0.key == key }?.value
    }

    /// The value of `key`, which must be there.
    public func required(_ key: String) throws(ConfigError) -> ConfigNode {
        guard let value = self[key] else {
            throw self.owner.error("\(key) is required")
        }
        return value
    }

    /// Whether `key` is there.
    public func has(_ key: String) -> Bool { self[key] != nil }
}

extension String {
    fileprivate var replacingUnderscores: String {
        self.contains("_") ? String(self.filter { $0 != "_" }) : self
    }
}
