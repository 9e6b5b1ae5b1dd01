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
/// optional fields follow, the fixed fields as little-endian integers, and strings as a 16-bit length
/// and their UTF-8 bytes. A chunk is read back only by the LBLab that wrote it or a newer one; a
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

    static func encode(_ records: [RequestRecord]) -> [UInt8] {
        var writer = Writer(capacity: 1 + records.count * 72)
        writer.append(Self.format)
        for record in records {
            var flags: UInt8 = 0
            if record.firstByteMicros != nil { flags |= 1 }
            if record.status != nil { flags |= 2 }
            if record.backendID != nil { flags |= 4 }
            if record.error != nil { flags |= 8 }
            if record.key != nil { flags |= 16 }
            writer.append(flags)
            writer.append(record.id)
            writer.append(record.clientID)
            writer.append(record.intendedMicros)
            writer.append(record.sentMicros)
            if let value = record.firstByteMicros { writer.append(value) }
            writer.append(record.doneMicros)
            if let value = record.status { writer.append(Int64(value)) }
            if let value = record.backendID { writer.append(Int64(value)) }
            writer.append(Int64(record.attempts))
            writer.append(record.bytesIn)
            writer.append(record.bytesOut)
            if let value = record.error { writer.append(value.rawValue) }
            if let value = record.key { writer.append(Int64(value)) }
            writer.append(record.clientIP)
        }
        return writer.bytes
    }

    static func decodeRequests(_ bytes: UnsafeRawBufferPointer, count: Int) throws(Malformed) -> [RequestRecord] {
        var reader = try Reader(bytes)
        var records: [RequestRecord] = []
        records.reserveCapacity(count)
        for _ in 0..<count {
            let flags: UInt8 = try reader.read()
            let id: Int64 = try reader.read()
            let clientID: Int32 = try reader.read()
            let intended: Int64 = try reader.read()
            let sent: Int64 = try reader.read()
            let firstByte: Int64? = flags & 1 != 0 ? try reader.read() : nil
            let done: Int64 = try reader.read()
            let status: Int64? = flags & 2 != 0 ? try reader.read() : nil
            let backendID: Int64? = flags & 4 != 0 ? try reader.read() : nil
            let attempts: Int64 = try reader.read()
            let bytesIn: Int64 = try reader.read()
            let bytesOut: Int64 = try reader.read()
            var error: RequestFailure?
            if flags & 8 != 0 {
                let raw = try reader.readString()
                guard let failure = RequestFailure(rawValue: raw) else {
                    throw Malformed(description: "unknown request error \"\(raw)\"")
                }
                error = failure
            }
            let key: Int64? = flags & 16 != 0 ? try reader.read() : nil
            let clientIP = try reader.readString()
            records.append(
                RequestRecord(
                    id: id, clientID: clientID, clientIP: clientIP, intendedMicros: intended, sentMicros: sent,
                    firstByteMicros: firstByte, doneMicros: done, status: status.map(Int.init),
                    backendID: backendID.map(Int.init), attempts: Int(attempts), bytesIn: bytesIn, bytesOut: bytesOut,
                    error: error, key: key.map(Int.init)
                )
            )
        }
        try reader.expectEnd()
        return records
    }

    // MARK: Proxy requests

    static func encode(_ records: [ProxyRequestRecord]) -> [UInt8] {
        var writer = Writer(capacity: 1 + records.count * 64)
        writer.append(Self.format)
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
            writer.append(record.requestID)
            writer.append(record.receivedMicros)
            if let value = record.pickedMicros { writer.append(value) }
            if let value = record.backendID { writer.append(Int64(value)) }
            if let value = record.upstreamStartMicros { writer.append(value) }
            if let value = record.upstreamDoneMicros { writer.append(value) }
            if let value = record.status { writer.append(Int64(value)) }
            writer.append(Int64(record.attempts))
            if let value = record.retriedFrom { writer.append(Int64(value)) }
            if let value = record.clientIP { writer.append(value) }
        }
        return writer.bytes
    }

    static func decodeProxyRequests(_ bytes: UnsafeRawBufferPointer, count: Int) throws(Malformed) -> [ProxyRequestRecord] {
        var reader = try Reader(bytes)
        var records: [ProxyRequestRecord] = []
        records.reserveCapacity(count)
        for _ in 0..<count {
            let flags: UInt8 = try reader.read()
            let requestID: Int64 = try reader.read()
            let received: Int64 = try reader.read()
            let picked: Int64? = flags & 1 != 0 ? try reader.read() : nil
            let backendID: Int64? = flags & 2 != 0 ? try reader.read() : nil
            let upstreamStart: Int64? = flags & 4 != 0 ? try reader.read() : nil
            let upstreamDone: Int64? = flags & 8 != 0 ? try reader.read() : nil
            let status: Int64? = flags & 16 != 0 ? try reader.read() : nil
            let attempts: Int64 = try reader.read()
            let retriedFrom: Int64? = flags & 32 != 0 ? try reader.read() : nil
            let clientIP: String? = flags & 64 != 0 ? try reader.readString() : nil
            records.append(
                ProxyRequestRecord(
                    requestID: requestID, receivedMicros: received, pickedMicros: picked,
                    backendID: backendID.map(Int.init), upstreamStartMicros: upstreamStart,
                    upstreamDoneMicros: upstreamDone, status: status.map(Int.init), attempts: Int(attempts),
                    retriedFrom: retriedFrom.map(Int.init), clientIP: clientIP
                )
            )
        }
        try reader.expectEnd()
        return records
    }

    // MARK: Bytes

    private struct Writer {
        var bytes: [UInt8] = []

        init(capacity: Int) {
            self.bytes.reserveCapacity(capacity)
        }

        @inline(__always)
        mutating func append<Value: FixedWidthInteger>(_ value: Value) {
            withUnsafeBytes(of: value.littleEndian) { self.bytes.append(contentsOf: $0) }
        }

        mutating func append(_ string: String) {
            var string = string
            string.withUTF8 { utf8 in
                let length = min(utf8.count, Int(UInt16.max))
                self.append(UInt16(length))
                self.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8.prefix(length)))
            }
        }
    }

    private struct Reader {
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

        mutating func readString() throws(Malformed) -> String {
            let length = Int(try self.read() as UInt16)
            guard self.offset + length <= self.bytes.count else {
                throw Malformed(description: "chunk ends inside a string at byte \(self.offset)")
            }
            let string = String(decoding: UnsafeRawBufferPointer(rebasing: self.bytes[self.offset..<self.offset + length]), as: UTF8.self)
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
