#if os(Linux)
import CLinuxEvents
import Glibc
import LBCore
import NIOCore

/// A request's way on one connection of the engine: written (in parts when the socket takes it so),
/// its response read as reads bring it, and its end.
extension ClosedLoopEngine {
    // MARK: Requests

    /// The connection of slot `index` can take a request at `now`: it sends one if the pace allows.
    func connectionAvailable(_ index: Int, now: UInt64) {
        guard self.pace.takeClosedLoopTurn(now: now) else { return }
        var request = LoadRequest(id: self.context.newRequestID(), client: self.slots[index].client, intendedNanos: now)
        request.key = self.configuration.keys.map { $0.next(using: &self.keyGenerator) }
        let sent = Self.now()
        self.slots[index].inFlight = RequestInFlight(request: request, sentNanos: sent, deadlineNanos: sent &+ self.timeoutNanos)
        self.slots[index].parser.reset(requestIsHEAD: self.template.isHEAD)
        self.template.write(
            id: request.id,
            clientIP: self.tally.clientIPs[request.client],
            key: request.key,
            into: &self.slots[index].request
        )
        self.inFlight += 1
        self.tally.sent(request, at: sent)
        self.writePending(index)
    }

    /// Writes what the socket takes of the request of slot `index`, and asks epoll for writability
    /// while some is left.
    func writePending(_ index: Int) {
        let descriptor = self.slots[index].descriptor
        var failed = false
        while self.slots[index].request.readableBytes > 0 {
            let written = self.slots[index].request.withUnsafeReadableBytes { bytes in
                send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                self.slots[index].request.moveReaderIndex(forwardBy: written)
            } else if written < 0, errno == EINTR {
                continue
            } else {
                failed = written < 0 && errno != EAGAIN && errno != EWOULDBLOCK
                break
            }
        }
        if failed {
            self.fail(index, .connectionClosed)
            return
        }
        let wantsWritable = self.slots[index].request.readableBytes > 0
        if wantsWritable != self.slots[index].wantsWritable {
            self.slots[index].wantsWritable = wantsWritable
            let events = Self.readEvents | (wantsWritable ? EPOLLOUT.rawValue : 0)
            self.register(descriptor, events: events, token: self.token(index), operation: EPOLL_CTL_MOD)
        }
    }

    /// Reads everything the socket of slot `index` holds (edge-triggered: until a read comes back
    /// short) and hands it to the response parser; `toTheEnd` when the target has closed its side or
    /// the socket failed, which a short read does not show: then until the end of the stream.
    func readable(_ index: Int, toTheEnd: Bool) {
        while self.slots[index].phase == .open {
            switch self.readOnce(index) {
            case .filled: continue
            case .short where toTheEnd: continue
            case .short, .nothing: return
            }
        }
    }

    /// What one read came to.
    private enum ReadOutcome {
        /// It filled the space it was given: more may wait.
        case filled
        /// It took less: the socket had no more for now.
        case short
        /// Nothing to read, or the connection ended.
        case nothing
    }

    /// One read from the socket of slot `index` into the engine's read buffer, handed to the response
    /// parser after what the connection's earlier reads left.
    private func readOnce(_ index: Int) -> ReadOutcome {
        let descriptor = self.slots[index].descriptor
        var result = 0
        var readErrno: Int32 = 0
        var space = 0
        repeat {
            self.scratch.clear()
            self.scratch.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.readSize) { bytes in
                space = bytes.count
                result = read(descriptor, bytes.baseAddress, bytes.count)
                readErrno = errno
                return max(0, result)
            }
        } while result < 0 && readErrno == EINTR
        if result < 0 {
            if readErrno != EAGAIN && readErrno != EWOULDBLOCK {
                self.fail(index, .connectionClosed)
            }
            return .nothing
        }
        if result == 0 {
            // The target closed the connection: a response delimited by the close ends here.
            if self.slots[index].inFlight != nil, self.slots[index].parser.connectionClosed() {
                self.complete(index, keepAlive: false, at: Self.now())
            } else {
                self.fail(index, .connectionClosed)
            }
            return .nothing
        }
        let filled: ReadOutcome = result == space ? .filled : .short
        guard self.slots[index].inFlight != nil else { return filled }  // bytes after a timeout: ignored
        // One clock read per read: a response that arrives whole is first byte and done at once.
        let now = Self.now()
        if self.slots[index].inFlight?.firstByteNanos == nil {
            self.slots[index].inFlight?.firstByteNanos = now
        }
        // What earlier reads left, out of its slot while the slot's parser reads.
        var pending = self.slots[index].cumulation.take()
        let progress: HTTPResponseParser.Progress
        do {
            progress = try self.slots[index].parser.parse(&self.scratch, after: &pending)
        } catch {
            self.fail(index, .badResponse)
            return .nothing
        }
        self.slots[index].cumulation = pending
        if progress == .complete {
            self.complete(index, keepAlive: self.slots[index].parser.head?.keepAlive ?? false, at: now)
        }
        return filled
    }

    private func complete(_ index: Int, keepAlive: Bool, at doneNanos: UInt64) {
        guard let done = self.slots[index].inFlight else { return }
        self.slots[index].inFlight = nil
        self.inFlight -= 1
        self.tally.end(done.outcome(doneNanos: doneNanos, parser: self.slots[index].parser, error: nil, reusable: keepAlive))
        if keepAlive {
            self.connectionAvailable(index, now: doneNanos)
        } else {
            self.closeConnection(index)
            self.replaceLostConnection()
        }
    }

    /// Ends the request on slot `index`, if any, with `error`, and retires the connection.
    func fail(_ index: Int, _ error: RequestFailure) {
        if let failed = self.slots[index].inFlight {
            self.slots[index].inFlight = nil
            self.inFlight -= 1
            self.tally.end(failed.outcome(doneNanos: Self.now(), parser: self.slots[index].parser, error: error, reusable: false))
        }
        self.closeConnection(index)
        self.replaceLostConnection()
    }
}
#endif
