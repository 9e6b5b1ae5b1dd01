import LBCore

/// A batch of request records packed into bytes, as `staged_records.data` holds it while its run is
/// recording.
///
/// SQLite spends about 0.8 µs of CPU on each row of `requests` (its record encoding and the B-tree),
/// which at 100,000 requests a second is a tenth of a core taken from the experiment it records. A
/// chunk costs a copy of the records into one blob instead; the rows are built from the chunks when the
/// run ends (``RunRecorder/finish(status:durationMicros:)``), or, if the recording process died first,
/// by the next process that opens the file (``ResultsDatabase/open(path:)``).
///
/// The layout: one format byte, then the records back to back, each a byte of flags saying which
/// optional fields follow, then every integer as a zigzag LEB128 varint (times and ids as differences
/// from the field before them or from the record before, so that most take one or two bytes), and
/// strings as a varint length and their UTF-8 bytes: about 30 bytes a request, against some 50 for its
/// row. A chunk is read back only by the LBLab that wrote it or a newer one; a
/// format it does not know is refused, never guessed at.
enum RecordChunk {
    /// The format written by this version.
    static let format: UInt8 = 1

    /// What `staged_records.kind` says of a chunk.
    enum Kind: String {
        case requests
        case proxyRequests = "proxy_requests"
    }

    /// A chunk that cannot be read back.
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    // MARK: Requests

    /// `records` packed, in a new array.
    static func encode(_ records: [RequestRecord]) -> [UInt8] {
        let buffer = Buffer()
        return withExtendedLifetime(buffer) { Array(Self.encode(records, into: buffer)) }
    }

    /// `records` packed into `buffer`; the bytes stay valid until the buffer's next use.
    static func encode(_ records: [RequestRecord], into buffer: Buffer) -> UnsafeRawBufferPointer {
        var capacity = 1
        for record in records {
            // Flags, at most 12 integers and 2 string lengths of 10 bytes each, and the strings.
            capacity += 1 + 14 * 10 + record.clientIP.utf8.count + (record.error?.rawValue.utf8.count ?? 0)
        }
        return buffer.fill(capacity: capacity) { writer in
            var previousID: Int64 = 0
            var previousIntended: Int64 = 0
            for record in records {
                var flags: UInt8 = 0
                if record.firstByteMicros != nil { flags |= 1 }
                if record.status != nil { flags |= 2 }
                if record.backendID != nil { flags |= 4 }
                if record.error != nil { flags |= 8 }
                if record.key != nil { flags |= 16 }
                writer.append(flags)
                writer.appendVarint(record.id &- previousID)
                writer.appendVarint(Int64(record.clientID))
                writer.appendVarint(record.intendedMicros &- previousIntended)
                writer.appendVarint(record.sentMicros &- record.intendedMicros)
                if let value = record.firstByteMicros { writer.appendVarint(value &- record.sentMicros) }
                writer.appendVarint(record.doneMicros &- record.sentMicros)
                if let value = record.status { writer.appendVarint(Int64(value)) }
                if let value = record.backendID { writer.appendVarint(Int64(value)) }
                writer.appendVarint(Int64(record.attempts))
                writer.appendVarint(record.bytesIn)
                writer.appendVarint(record.bytesOut)
                if let value = record.error { writer.append(value.rawValue) }
                if let value = record.key { writer.appendVarint(Int64(value)) }
                writer.append(record.clientIP)
                previousID = record.id
                previousIntended = record.intendedMicros
            }
        }
    }

    static func decodeRequests(_ bytes: UnsafeRawBufferPointer, count: Int) throws(Malformed) -> [RequestRecord] {
        var previousID: Int64 = 0
        var previousIntended: Int64 = 0
        return try Self.decode(bytes, count: count) { reader throws(Malformed) in
            let flags: UInt8 = try reader.read()
            let id = previousID &+ (try reader.readVarint())
            guard let clientID = Int32(exactly: try reader.readVarint()) else {
                throw Malformed(description: "a client id out of range before byte \(reader.offset)")
            }
            let intended = previousIntended &+ (try reader.readVarint())
            let sent = intended &+ (try reader.readVarint())
            let firstByte: Int64? = flags & 1 != 0 ? sent &+ (try reader.readVarint()) : nil
            let done = sent &+ (try reader.readVarint())
            let status: Int64? = flags & 2 != 0 ? try reader.readVarint() : nil
            let backendID: Int64? = flags & 4 != 0 ? try reader.readVarint() : nil
            let attempts = try reader.readVarint()
            let bytesIn = try reader.readVarint()
            let bytesOut = try reader.readVarint()
            var error: RequestFailure?
            if flags & 8 != 0 {
                let raw = try reader.readString()
                guard let failure = RequestFailure(rawValue: raw) else {
                    throw Malformed(description: "unknown request error \"\(raw)\"")
                }
                error = failure
            }
            let key: Int64? = flags & 16 != 0 ? try reader.readVarint() : nil
            let clientIP = try reader.readString()
            previousID = id
            previousIntended = intended
            return RequestRecord(
                id: id,
                clientID: clientID,
                clientIP: clientIP,
                intendedMicros: intended,
                sentMicros: sent,
                firstByteMicros: firstByte,
                doneMicros: done,
                status: status.map(Int.init),
                backendID: backendID.map(Int.init),
                attempts: Int(attempts),
                bytesIn: bytesIn,
                bytesOut: bytesOut,
                error: error,
                key: key.map(Int.init)
            )
        }
    }

    // MARK: Proxy requests

    /// `records` packed, in a new array.
    static func encode(_ records: [ProxyRequestRecord]) -> [UInt8] {
        let buffer = Buffer()
        return withExtendedLifetime(buffer) { Array(Self.encode(records, into: buffer)) }
    }

    /// `records` packed into `buffer`; the bytes stay valid until the buffer's next use.
    static func encode(_ records: [ProxyRequestRecord], into buffer: Buffer) -> UnsafeRawBufferPointer {
        var capacity = 1
        for record in records {
            // Flags, at most 9 integers and a string length of 10 bytes each, and the string.
            capacity += 1 + 10 * 10 + (record.clientIP?.utf8.count ?? 0)
        }
        return buffer.fill(capacity: capacity) { writer in
            var previousID: Int64 = 0
            var previousReceived: Int64 = 0
            for record in records {
                var flags: UInt8 = 0
                if record.pickedMicros != nil { flags |= 1 }
                if record.backendID != nil { flags |= 2 }
                if record.upstreamStartMicros != nil { flags |= 4 }
                if record.upstreamDoneMicros != nil { flags |= 8 }
                if record.status != nil { flags |= 16 }
                if record.retriedFrom != nil { flags |= 32 }
                if record.clientIP != nil { flags |= 64 }
                writer.append(flags)
                writer.appendVarint(record.requestID &- previousID)
                writer.appendVarint(record.receivedMicros &- previousReceived)
                if let value = record.pickedMicros { writer.appendVarint(value &- record.receivedMicros) }
                if let value = record.backendID { writer.appendVarint(Int64(value)) }
                if let value = record.upstreamStartMicros { writer.appendVarint(value &- record.receivedMicros) }
                if let value = record.upstreamDoneMicros { writer.appendVarint(value &- record.receivedMicros) }
                if let value = record.status { writer.appendVarint(Int64(value)) }
                writer.appendVarint(Int64(record.attempts))
                if let value = record.retriedFrom { writer.appendVarint(Int64(value)) }
                if let value = record.clientIP { writer.append(value) }
                previousID = record.requestID
                previousReceived = record.receivedMicros
            }
        }
    }

    static func decodeProxyRequests(
        _ bytes: UnsafeRawBufferPointer,
        count: Int
    ) throws(Malformed) -> [ProxyRequestRecord] {
        var previousID: Int64 = 0
        var previousReceived: Int64 = 0
        return try Self.decode(bytes, count: count) { reader throws(Malformed) in
            let flags: UInt8 = try reader.read()
            let requestID = previousID &+ (try reader.readVarint())
            let received = previousReceived &+ (try reader.readVarint())
            let picked: Int64? = flags & 1 != 0 ? received &+ (try reader.readVarint()) : nil
            let backendID: Int64? = flags & 2 != 0 ? try reader.readVarint() : nil
            let upstreamStart: Int64? = flags & 4 != 0 ? received &+ (try reader.readVarint()) : nil
            let upstreamDone: Int64? = flags & 8 != 0 ? received &+ (try reader.readVarint()) : nil
            let status: Int64? = flags & 16 != 0 ? try reader.readVarint() : nil
            let attempts = try reader.readVarint()
            let retriedFrom: Int64? = flags & 32 != 0 ? try reader.readVarint() : nil
            let clientIP: String? = flags & 64 != 0 ? try reader.readString() : nil
            previousID = requestID
            previousReceived = received
            return ProxyRequestRecord(
                requestID: requestID,
                receivedMicros: received,
                pickedMicros: picked,
                backendID: backendID.map(Int.init),
                upstreamStartMicros: upstreamStart,
                upstreamDoneMicros: upstreamDone,
                status: status.map(Int.init),
                attempts: Int(attempts),
                retriedFrom: retriedFrom.map(Int.init),
                clientIP: clientIP
            )
        }
    }

    /// Reads `count` records with `record`, each where the one before ended, and checks that the chunk
    /// ends with the last.
    private static func decode<Record>(
        _ bytes: UnsafeRawBufferPointer,
        count: Int,
        _ record: (inout Reader) throws(Malformed) -> Record
    ) throws(Malformed) -> [Record] {
        // Every record takes at least two bytes: a count beyond that is damage, not a reason to reserve it.
        guard count >= 0, count <= bytes.count / 2 else {
            throw Malformed(description: "\(count) records said to be in a chunk of \(bytes.count) bytes")
        }
        var reader = try Reader(bytes)
        var records: [Record] = []
        records.reserveCapacity(count)
        for _ in 0..<count {
            records.append(try record(&reader))
        }
        try reader.expectEnd()
        return records
    }

    // MARK: Bytes

    /// The memory chunks are packed into, kept from one chunk to the next: the writer thread packs a
    /// batch every quarter of a second or so, and allocating (and freeing) megabytes each time would
    /// take the process's memory-map lock and interrupt the producers with TLB shootdowns.
    final class Buffer {
        private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)

        deinit {
            self.storage.deallocate()
        }

        /// Fills at most `capacity` bytes through `body`, after the format byte, and returns them: the
        /// capacity is computed beforehand for the largest encoding of the records, so no field is
        /// checked or grows the buffer.
        fileprivate func fill(capacity: Int, _ body: (inout Writer) -> Void) -> UnsafeRawBufferPointer {
            if self.storage.count < capacity {
                self.storage.deallocate()
                self.storage = .allocate(byteCount: max(capacity, 2 * self.storage.count), alignment: 8)
            }
            var writer = Writer(buffer: self.storage)
            writer.append(RecordChunk.format)
            body(&writer)
            precondition(writer.offset <= capacity, "a record chunk outgrew its computed size")
            return UnsafeRawBufferPointer(rebasing: self.storage[..<writer.offset])
        }
    }

    fileprivate struct Writer {
        let buffer: UnsafeMutableRawBufferPointer
        var offset = 0

        @inline(__always)
        mutating func append<Value: FixedWidthInteger>(_ value: Value) {
            self.buffer.storeBytes(of: value.littleEndian, toByteOffset: self.offset, as: Value.self)
            self.offset += MemoryLayout<Value>.size
        }

        /// Appends `value` zigzag-encoded as a LEB128 varint: 1 byte for -64...63, at most 10.
        @inline(__always)
        mutating func appendVarint(_ value: Int64) {
            var zigzag = UInt64(bitPattern: (value << 1) ^ (value >> 63))
            while zigzag >= 0x80 {
                self.buffer.storeBytes(
                    of: UInt8(truncatingIfNeeded: zigzag) | 0x80,
                    toByteOffset: self.offset,
                    as: UInt8.self
                )
                self.offset += 1
                zigzag >>= 7
            }
            self.buffer.storeBytes(of: UInt8(zigzag), toByteOffset: self.offset, as: UInt8.self)
            self.offset += 1
        }

        mutating func append(_ string: String) {
            var string = string
            string.withUTF8 { utf8 in
                self.appendVarint(Int64(utf8.count))
                UnsafeMutableRawBufferPointer(rebasing: self.buffer[self.offset..<self.offset + utf8.count])
                    .copyMemory(from: UnsafeRawBufferPointer(utf8))
                self.offset += utf8.count
            }
        }
    }

    fileprivate struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 1

        init(_ bytes: UnsafeRawBufferPointer) throws(Malformed) {
            guard let format = bytes.first else { throw Malformed(description: "empty chunk") }
            guard format == RecordChunk.format else {
                throw Malformed(description: "chunk format \(format), this LBLab reads format \(RecordChunk.format)")
            }
            self.bytes = bytes
        }

        @inline(__always)
        mutating func read<Value: FixedWidthInteger>() throws(Malformed) -> Value {
            let size = MemoryLayout<Value>.size
            guard self.offset + size <= self.bytes.count else {
                throw Malformed(description: "chunk ends inside a record at byte \(self.offset)")
            }
            let value = self.bytes.loadUnaligned(fromByteOffset: self.offset, as: Value.self)
            self.offset += size
            return Value(littleEndian: value)
        }

        @inline(__always)
        mutating func readVarint() throws(Malformed) -> Int64 {
            var zigzag: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard self.offset < self.bytes.count, shift < 64 else {
                    throw Malformed(description: "chunk ends inside a number at byte \(self.offset)")
                }
                let byte = self.bytes[self.offset]
                self.offset += 1
                zigzag |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            return Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1)
        }

        mutating func readString() throws(Malformed) -> String {
            let length = Int(truncatingIfNeeded: try self.readVarint())
            guard length >= 0, length <= self.bytes.count - self.offset else {
                throw Malformed(description: "chunk ends inside a string at byte \(self.offset)")
            }
            let string = String(
                decoding: UnsafeRawBufferPointer(rebasing: self.bytes[self.offset..<self.offset + length]),
                as: UTF8.self
            )
            self.offset += length
            return string
        }

        func expectEnd() throws(Malformed) {
            guard self.offset == self.bytes.count else {
                throw Malformed(description: "\(self.bytes.count - self.offset) bytes after the chunk's last record")
            }
        }
    }
}
