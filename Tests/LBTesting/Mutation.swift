public import LBCore

/// Random edits of a valid input, for tests that put a reader under malformed input with a fixed seed.
public enum Mutation {
    /// Bytes that matter to the syntax of HTTP heads, chunk lines, URLs, JSON and YAML, and a few that do
    /// not.
    public static let interesting: [UInt8] = Array("\r\n \t:,;/0aZ-#\"'[]{}&*!|>%@`=?.".utf8) + [0, 0x7F, 0x80, 0xFF]

    /// `bytes` with one to four random edits: a byte replaced, inserted or deleted (the new ones from
    /// ``interesting``), a line doubled, or the end cut off.
    public static func mutated(_ bytes: [UInt8], using generator: inout SeededGenerator) -> [UInt8] {
        var bytes = bytes
        for _ in 0...generator.index(below: 4) where !bytes.isEmpty {
            let at = generator.index(below: bytes.count)
            let byte = Self.interesting[generator.index(below: Self.interesting.count)]
            switch generator.index(below: 5) {
            case 0: bytes[at] = byte
            case 1: bytes.insert(byte, at: at)
            case 2: bytes.remove(at: at)
            case 3:
                // The line around `at`, twice.
                let start = bytes[..<at].lastIndex(of: 10).map { $0 + 1 } ?? 0
                let end = bytes[at...].firstIndex(of: 10).map { $0 + 1 } ?? bytes.count
                bytes.insert(contentsOf: bytes[start..<end], at: start)
            default: bytes.removeLast(generator.index(below: min(bytes.count, 8)) + 1)
            }
        }
        return bytes
    }

    /// Cut points that split `count` bytes into random pieces of 1 to 16 bytes.
    public static func pieces(_ count: Int, using generator: inout SeededGenerator) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        while start < count {
            let end = min(count, start + 1 + generator.index(below: 16))
            ranges.append(start..<end)
            start = end
        }
        return ranges
    }
}
