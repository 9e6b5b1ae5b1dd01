import LBCore

extension ExpectedOutcome {
    /// Parses `text` (`p99(peak-ewma) < 0.5 * p99(round-robin)`, optionally followed by `with
    /// confidence` or `with 99% confidence`) whose algorithm labels must be among `labels`; the message
    /// of a thrown error says what is wrong and where in the text.
    public static func parse(_ text: String, labels: [String], line: Int = 0) throws(ExpectationSyntaxError) -> ExpectedOutcome {
        var parser = ExpectationParser(text: text, labels: labels)
        let lhs = try parser.sum()
        guard let comparison = parser.comparison() else {
            throw parser.error("expected a comparison (< <= > >= == !=) after \"\(lhs)\"")
        }
        let rhs = try parser.sum()
        let confidence = try parser.confidence()
        guard parser.atEnd else { throw parser.error("unexpected \"\(parser.rest)\"") }
        guard !(lhs.metrics.isEmpty && rhs.metrics.isEmpty) else {
            throw ExpectationSyntaxError(message: "names no metric; write e.g. p99(round-robin) < 100")
        }
        if confidence != nil, comparison == .equal || comparison == .notEqual {
            throw ExpectationSyntaxError(message: "\"with confidence\" judges a difference: use < <= > or >=, not \(comparison.rawValue)")
        }
        return ExpectedOutcome(text: text, lhs: lhs, comparison: comparison, rhs: rhs, line: line, confidence: confidence)
    }
}

/// Why an `expect:` line could not be read.
public struct ExpectationSyntaxError: Error, Hashable, CustomStringConvertible {
    /// What is wrong, and where in the line.
    public var message: String
    public var description: String { self.message }
}

/// A recursive-descent reader of one expectation: sum := product (('+'|'-') product)*,
/// product := factor (('*'|'/') factor)*, factor := number | metric '(' label ')' | '(' sum ')'.
private struct ExpectationParser {
    let characters: [Character]
    let labels: [String]
    var position = 0

    init(text: String, labels: [String]) {
        self.characters = Array(text)
        self.labels = labels
    }

    var atEnd: Bool {
        mutating get {
            self.skipSpaces()
            return self.position == self.characters.count
        }
    }

    var rest: String { String(self.characters[self.position...]) }

    func error(_ problem: String) -> ExpectationSyntaxError {
        ExpectationSyntaxError(message: "at column \(self.position + 1): \(problem)")
    }

    mutating func skipSpaces() {
        while self.position < self.characters.count, self.characters[self.position].isWhitespace { self.position += 1 }
    }

    mutating func peek() -> Character? {
        self.skipSpaces()
        return self.position < self.characters.count ? self.characters[self.position] : nil
    }

    mutating func comparison() -> ExpectedOutcome.Comparison? {
        self.skipSpaces()
        // Two-character operators first, so that `<=` is not read as `<`.
        for candidate in ExpectedOutcome.Comparison.allCases.sorted(by: { $0.rawValue.count > $1.rawValue.count }) {
            let symbol = Array(candidate.rawValue)
            if self.position + symbol.count <= self.characters.count,
                Array(self.characters[self.position..<self.position + symbol.count]) == symbol
            {
                self.position += symbol.count
                return candidate
            }
        }
        return nil
    }

    /// `with confidence` (0.95) or `with NN% confidence`, if the rest of the line is that; `nil` when
    /// it is not.
    mutating func confidence() throws(ExpectationSyntaxError) -> Double? {
        self.skipSpaces()
        let start = self.position
        let words = self.rest.split(whereSeparator: \.isWhitespace).map(String.init)
        guard words.first == "with" else { return nil }
        switch words.count {
        case 2 where words[1] == "confidence":
            self.position = self.characters.count
            return 0.95
        case 3 where words[2] == "confidence" && words[1].hasSuffix("%"):
            guard let percent = Double(words[1].dropLast()), percent >= 50, percent < 100 else {
                self.position = start + "with".count
                self.skipSpaces()
                throw self.error("\"\(words[1])\" is not a confidence; write e.g. 95% (50% to 99.9%)")
            }
            self.position = self.characters.count
            return percent / 100
        default:
            throw self.error("expected \"with confidence\" or \"with 95% confidence\" at the end, found \"\(self.rest)\"")
        }
    }

    mutating func sum() throws(ExpectationSyntaxError) -> ExpectedOutcome.Expression {
        var value = try self.product()
        while let op = self.peek(), op == "+" || op == "-" {
            self.position += 1
            value = .binary(op, value, try self.product())
        }
        return value
    }

    mutating func product() throws(ExpectationSyntaxError) -> ExpectedOutcome.Expression {
        var value = try self.factor()
        while let op = self.peek(), op == "*" || op == "/" {
            self.position += 1
            value = .binary(op, value, try self.factor())
        }
        return value
    }

    mutating func factor() throws(ExpectationSyntaxError) -> ExpectedOutcome.Expression {
        guard let first = self.peek() else { throw self.error("expected a number or a metric, found the end") }
        if first == "(" {
            self.position += 1
            let inner = try self.sum()
            guard self.peek() == ")" else { throw self.error("expected )") }
            self.position += 1
            return inner
        }
        if first.isNumber || first == "." {
            let start = self.position
            while self.position < self.characters.count,
                self.characters[self.position].isNumber || ".eE_".contains(self.characters[self.position])
            {
                self.position += 1
            }
            let text = String(self.characters[start..<self.position]).filter { $0 != "_" }
            guard let number = Double(text) else { throw self.error("\"\(text)\" is not a number") }
            return .number(number)
        }
        let start = self.position
        while self.position < self.characters.count,
            self.characters[self.position].isLetter || self.characters[self.position].isNumber
                || "-.".contains(self.characters[self.position])
        {
            self.position += 1
        }
        let name = String(self.characters[start..<self.position])
        guard !name.isEmpty else { throw self.error("expected a number or a metric, found \"\(first)\"") }
        guard let metric = ExpectedOutcome.Metric(rawValue: name) else {
            self.position = start
            let known = ExpectedOutcome.Metric.allCases.map(\.rawValue).joined(separator: ", ")
            throw self.error("\"\(name)\" is not a metric; known: \(known)")
        }
        guard self.peek() == "(" else { throw self.error("expected (algorithm) after \(name)") }
        self.position += 1
        self.skipSpaces()
        let labelStart = self.position
        while self.position < self.characters.count, self.characters[self.position] != ")" { self.position += 1 }
        guard self.position < self.characters.count else { throw self.error("expected ) after \(name)(…") }
        let inside = String(self.characters[labelStart..<self.position])
        self.position += 1
        // `label@point`: the algorithm at one point of the scenario's sweep.
        let parts = inside.split(separator: "@", maxSplits: 1).map { String($0).trimmingSpaces }
        let written = parts.first ?? ""
        // An alias (LC) names the entry labelled with the algorithm's name (least-connections).
        let label = self.labels.contains(written) ? written : Algorithm(name: written)?.name ?? written
        guard self.labels.contains(label) else {
            self.position = labelStart
            throw self.error("\"\(written)\" is not an algorithm of this scenario; its algorithms: \(self.labels.joined(separator: ", "))")
        }
        guard parts.count == 2 else { return .metric(metric, label: label) }
        guard !parts[1].isEmpty else { throw self.error("expected a sweep point after @, e.g. \(name)(\(label)@backends.count=64)") }
        return .metric(metric, label: label + "@" + parts[1].split(whereSeparator: \.isWhitespace).joined(separator: " "))
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(self.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
