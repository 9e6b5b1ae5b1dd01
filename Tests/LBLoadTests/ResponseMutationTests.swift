import LBCore
import LBTesting
import NIOCore
import Testing

@testable import LBLoad

/// The load generator's response parser under responses mutated at random (fixed seeds): it never traps,
/// and the bytes arriving in random pieces give what they give whole, so what a run counts does not
/// depend on how the kernel happened to cut the stream.
@Suite("Responses under random mutation")
struct ResponseMutationTests {
    static let responses = [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-LBLab-Backend: b2\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: t\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
        "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil the close",
    ]

    /// What feeding a parser some bytes came to: the responses it completed (head and body bytes), and
    /// how it stopped.
    struct Outcome: Equatable {
        var responses: [HTTPResponseParser.Head] = []
        var bodies: [Int] = []
        var malformed: String?
    }

    /// Feeds `bytes` to a parser in `pieces`, reading every response they complete (several may follow
    /// one another on a keep-alive connection), until the bytes run out or one is malformed.
    static func feed(_ bytes: [UInt8], in pieces: [Range<Int>]) -> Outcome {
        var parser = HTTPResponseParser()
        parser.reset(requestIsHEAD: false)
        var outcome = Outcome()
        var pending = ByteBuffer()
        for piece in pieces {
            pending.writeBytes(bytes[piece])
            do {
                while pending.readableBytes > 0, try parser.parse(&pending) == .complete {
                    outcome.responses.append(parser.head!)
                    outcome.bodies.append(parser.bodyBytes)
                    parser.reset(requestIsHEAD: false)
                }
            } catch {
                outcome.malformed = error.reason
                return outcome
            }
        }
        return outcome
    }

    @Test("a mutated stream of responses reads alike whole and in random pieces", arguments: 0..<4)
    func pieces(seed: UInt64) {
        var generator = SeededGenerator(seed: 0xFEED_0000 + seed)
        var complete = 0
        var malformed = 0
        for round in 0..<3_000 {
            // Two responses back to back, the first of them mutated: what follows one must not change.
            let first = Self.responses[round % Self.responses.count]
            let second = Self.responses[(round / Self.responses.count) % Self.responses.count]
            let bytes = Mutation.mutated(Array(first.utf8), using: &generator) + Array(second.utf8)
            let whole = Self.feed(bytes, in: [0..<bytes.count])
            for _ in 0..<3 {
                let pieces = Mutation.pieces(bytes.count, using: &generator)
                let split = Self.feed(bytes, in: pieces)
                #expect(split == whole, "\(String(reflecting: String(decoding: bytes, as: UTF8.self))) in pieces \(pieces.map(\.count))")
            }
            complete += whole.responses.count
            if whole.malformed != nil { malformed += 1 }
        }
        #expect(complete > 500 && malformed > 500, "complete \(complete), malformed \(malformed)")
    }
}
