/// Finds where an HTTP/1.1 message body ends (RFC 9112 §6, §7.1) without copying or decoding it, so
/// a proxy can pass the body on as it came, chunk framing and trailers included.
///
/// Feed it the bytes that follow the head, in as many pieces as they arrive; each call says how many
/// of the bytes belong to the body. Once ``isComplete``, what is left belongs to the next message.
public struct HTTPBodyFramer: Sendable {
    /// How a message's body is delimited.
    public enum Framing: Equatable, Sendable {
        /// No body.
        case none
        /// `Content-Length` bytes.
        case length(Int)
        /// The chunked transfer coding, ended by a zero-size chunk and the trailer section.
        case chunked
        /// Everything until the connection closes (responses only).
        case untilClose
    }

    private enum State: Equatable, Sendable {
        case done
        case fixed(remaining: Int)
        /// In a chunk-size line: the size so far, whether a digit was read, whether past the size.
        case chunkSize(size: Int, digits: Bool, pastSize: Bool)
        case chunkSizeLF(size: Int)
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        /// At the start of a trailer line (an empty one ends the message).
        case trailerStart
        case trailerLine
        case trailerLF(last: Bool)
        case untilClose
    }

    /// The longest chunk-size line (with extensions) and trailer section accepted.
    public static let maxLineBytes = 4_096
    public static let maxTrailerBytes = 64 * 1024

    private var state: State
    private var lineBytes = 0
    private var trailerBytes = 0
    /// Body bytes seen so far, framing included.
    public private(set) var bytesSeen = 0

    /// A framer for a body delimited by `framing`.
    public init(_ framing: Framing) {
        switch framing {
        case .none, .length(0): self.state = .done
        case .length(let length): self.state = .fixed(remaining: length)
        case .chunked: self.state = .chunkSize(size: 0, digits: false, pastSize: false)
        case .untilClose: self.state = .untilClose
        }
    }

    /// Whether the body has ended.
    public var isComplete: Bool { self.state == .done }

    /// Whether the body runs until the connection closes.
    public var runsUntilClose: Bool { self.state == .untilClose }

    /// How many of `bytes` (which follow what earlier calls were given) belong to the body.
    public mutating func scan(_ bytes: UnsafeRawBufferPointer) throws(HTTPMalformed) -> Int {
        var index = 0
        let count = bytes.count
        scanning: while index < count {
            switch self.state {
            case .done:
                break scanning
            case .untilClose:
                index = count
            case .fixed(let remaining):
                let taken = min(remaining, count - index)
                index += taken
                self.state = taken == remaining ? .done : .fixed(remaining: remaining - taken)
            case .chunkData(let remaining):
                let taken = min(remaining, count - index)
                index += taken
                self.state = taken == remaining ? .chunkDataCR : .chunkData(remaining: remaining - taken)
            case .chunkSize(var size, var digits, var pastSize):
                let byte = bytes[index]
                index += 1
                self.lineBytes += 1
                guard self.lineBytes <= Self.maxLineBytes else { throw HTTPMalformed("chunk-size line over 4 KiB") }
                if byte == 0x0D {
                    guard digits else { throw HTTPMalformed("empty chunk size") }
                    self.state = .chunkSizeLF(size: size)
                    continue
                }
                if !pastSize, let value = Self.hexValue(byte) {
                    guard size <= (Int.max >> 4) else { throw HTTPMalformed("chunk size too large") }
                    size = size << 4 | Int(value)
                    digits = true
                } else if byte == 0x3B || byte == 0x20 || byte == 0x09 {
                    // Whitespace or a chunk extension (`;name=value`), ignored to the end of the line.
                    guard digits else { throw HTTPMalformed("bad chunk size") }
                    pastSize = true
                } else if !pastSize || !HTTPBytes.isValueCharacter(byte) {
                    throw HTTPMalformed("bad chunk size")
                }
                self.state = .chunkSize(size: size, digits: digits, pastSize: pastSize)
            case .chunkSizeLF(let size):
                guard bytes[index] == 0x0A else { throw HTTPMalformed("chunk-size line without CRLF") }
                index += 1
                self.lineBytes = 0
                self.state = size == 0 ? .trailerStart : .chunkData(remaining: size)
            case .chunkDataCR:
                guard bytes[index] == 0x0D else { throw HTTPMalformed("chunk data longer than its size") }
                index += 1
                self.state = .chunkDataLF
            case .chunkDataLF:
                guard bytes[index] == 0x0A else { throw HTTPMalformed("chunk data longer than its size") }
                index += 1
                self.state = .chunkSize(size: 0, digits: false, pastSize: false)
            case .trailerStart, .trailerLine:
                let byte = bytes[index]
                index += 1
                self.trailerBytes += 1
                guard self.trailerBytes <= Self.maxTrailerBytes else { throw HTTPMalformed("trailer section over 64 KiB") }
                if byte == 0x0D {
                    self.state = .trailerLF(last: self.state == .trailerStart)
                } else {
                    guard HTTPBytes.isValueCharacter(byte) else { throw HTTPMalformed("bad character in a trailer") }
                    self.state = .trailerLine
                }
            case .trailerLF(let last):
                guard bytes[index] == 0x0A else { throw HTTPMalformed("trailer line without CRLF") }
                index += 1
                self.state = last ? .done : .trailerStart
            }
        }
        self.bytesSeen += index
        return index
    }

    @inline(__always)
    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }
}
