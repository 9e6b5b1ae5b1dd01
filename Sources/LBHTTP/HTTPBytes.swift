#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte-level helpers for reading HTTP/1.1 text (RFC 9110 §5.6, RFC 9112 §2): the grammar's character
/// classes, ASCII case-insensitive comparison and the search for the end of a head.
public enum HTTPBytes {
    /// Whether `byte` is a `tchar` (RFC 9110 §5.6.2): what a method or a header name is made of.
    @inlinable
    public static func isTokenCharacter(_ byte: UInt8) -> Bool {
        // Bit n of the mask is ASCII n: ! # $ % & ' * + - . 0-9 A-Z ^ _ ` a-z | ~
        byte < 64 ? (0x03FF_6CFA_0000_0000 as UInt64) >> byte & 1 == 1
            : byte < 128 ? (0x57FF_FFFF_C7FF_FFFE as UInt64) >> (byte - 64) & 1 == 1 : false
    }

    /// Whether `byte` may appear in a header value (RFC 9110 §5.5: visible characters, obs-text,
    /// space and tab; no other control character).
    @inlinable
    public static func isValueCharacter(_ byte: UInt8) -> Bool {
        byte >= 0x20 ? byte != 0x7F : byte == 0x09
    }

    /// Whether `bytes` begin with `HTTP/1.`, the version prefix of every HTTP/1.x start line. Seven
    /// byte comparisons: `starts(with: "HTTP/1.".utf8)` runs the generic sequence algorithm over a
    /// string's UTF-8 view, which showed in profiles of both the proxy and the load generator.
    @inlinable
    public static func startsWithHTTP1(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 7 && bytes[0] == 0x48 && bytes[1] == 0x54 && bytes[2] == 0x54 && bytes[3] == 0x50
            && bytes[4] == 0x2F && bytes[5] == 0x31 && bytes[6] == 0x2E
    }

    /// The offset of the `\r\n\r\n` that ends a head in `bytes`, if it has arrived.
    public static func endOfHead(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var index = 0
        let last = bytes.count - 4
        while index <= last {
            let fourth = bytes[index + 3]
            if fourth != 0x0A {  // the last byte of the terminator
                index += fourth == 0x0D ? 1 : 4
                continue
            }
            if bytes[index] == 0x0D && bytes[index + 1] == 0x0A && bytes[index + 2] == 0x0D {
                return index
            }
            index += 1
        }
        return nil
    }

    /// Whether `bytes` hold a line feed not preceded by a carriage return (RFC 9112 §2.2: lines end
    /// with CRLF; a strict reader refuses a bare LF instead of guessing where the line ends).
    public static func containsBareLF(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        var index = 0
        while index < bytes.count, let found = memchr(base + index, 0x0A, bytes.count - index) {
            let offset = base.distance(to: UnsafeRawPointer(found))
            if offset == 0 || bytes[offset - 1] != 0x0D { return true }
            index = offset + 1
        }
        return false
    }

    /// Whether `bytes` equal `lowercase` ignoring ASCII case (`lowercase` must be lower case).
    @inlinable
    public static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] {
            // `| 0x20` folds letters; a non-letter matches only itself, which `expected` holds.
            return false
        }
        return true
    }

    /// Whether `a` and `b` are equal ignoring ASCII letter case.
    public static func equalIgnoringCase(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for index in 0..<a.count {
            let x = a[index]
            let y = b[index]
            if x == y { continue }
            let lower = x | 0x20
            guard lower == y | 0x20, lower >= 0x61, lower <= 0x7A else { return false }
        }
        return true
    }

    /// Where the authority (host and port, without user info) is in a request `target` in absolute
    /// form (`http://` or `https://`, any case), or `nil` for a target in any other form. It ends where
    /// the path or the query begins, or with the target.
    public static func absoluteFormAuthority(_ target: UnsafeRawBufferPointer) -> Range<Int>? {
        let schemeEnd: Int
        if target.count >= 7, Self.equalsLowercased(UnsafeRawBufferPointer(rebasing: target[..<7]), "http://") {
            schemeEnd = 7
        } else if target.count >= 8, Self.equalsLowercased(UnsafeRawBufferPointer(rebasing: target[..<8]), "https://") {
            schemeEnd = 8
        } else {
            return nil
        }
        var end = schemeEnd
        while end < target.count, target[end] != UInt8(ascii: "/"), target[end] != UInt8(ascii: "?") { end += 1 }
        let userInfoEnd = target[schemeEnd..<end].lastIndex(of: UInt8(ascii: "@")).map { $0 + 1 }
        return (userInfoEnd ?? schemeEnd)..<end
    }

    /// `bytes` without leading and trailing spaces and tabs.
    @inlinable
    public static func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var start = 0
        var end = bytes.count
        while start < end && (bytes[start] == 0x20 || bytes[start] == 0x09) { start += 1 }
        while end > start && (bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09) { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }

    /// Calls `body` with each element of the comma-separated list `value` (RFC 9110 §5.6.1), trimmed,
    /// empty ones skipped.
    @inlinable
    public static func forEachListElement(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        for index in 0...value.count where index == value.count || value[index] == 0x2C {
            let element = Self.trimmed(UnsafeRawBufferPointer(rebasing: value[start..<index]))
            if !element.isEmpty { body(element) }
            start = index + 1
        }
    }

    /// The decimal number `bytes` spell, or `nil` when they are empty, hold anything but digits or
    /// overflow.
    @inlinable
    public static func decimal(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            let digit = byte &- 0x30
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
        }
        return value
    }
}
