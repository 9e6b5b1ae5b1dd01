#if os(Linux)
import CLinuxEvents
import Glibc
import LBCore
import NIOCore
import Synchronization

/// What a ``ClosedLoopEngine`` and the run that started it share across threads: the request to stop,
/// the statistics published so far, and the first connection error.
final class ClosedLoopControl: Sendable {
    private let stopRequested = Atomic<Bool>(false)
    /// An eventfd the engine waits on beside its sockets, written to wake it for ``requestStop()``.
    let wakeDescriptor: Int32
    private let published = Mutex(LoadStatistics())
    private let connectError = Mutex<String?>(nil)

    init() {
        self.wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(self.wakeDescriptor >= 0, "eventfd: \(String(cString: strerror(errno)))")
    }

    deinit {
        close(self.wakeDescriptor)
    }

    /// Asks the engine to stop sending; it ends what is in flight as `interrupted` and finishes.
    func requestStop() {
        self.stopRequested.store(true, ordering: .releasing)
        var one: UInt64 = 1
        _ = write(self.wakeDescriptor, &one, MemoryLayout<UInt64>.size)
    }

    var isStopRequested: Bool { self.stopRequested.load(ordering: .acquiring) }

    /// The statistics the engine published last: at most 100 ms old while it runs, final once it has
    /// finished.
    var statistics: LoadStatistics { self.published.withLock { $0 } }

    func publish(_ statistics: LoadStatistics) {
        self.published.withLock { $0 = statistics }
    }

    var firstConnectError: String? { self.connectError.withLock { $0 } }

    func noteConnectError(_ description: String) {
        self.connectError.withLock { if $0 == nil { $0 = description } }
    }
}

/// The closed loop of HTTP/1.1 requests on one thread, on Linux's epoll directly: each of its
/// connections sends its next request as soon as the last response is complete, as wrk does.
///
/// It does what ``LoadWorker`` does for a closed loop, with the same pace, request bytes, response
/// parser and tally, but reads and writes its sockets itself instead of through SwiftNIO's channels.
/// Measured against wrk (bench/RESULTS.md), the channel machinery every read and write passes through
/// cost the load generator 0.7 µs of user time a request, half of its user time, and kept it at
/// parity with wrk, where the engine leads by about 4%; the closed loop is the mode meant to drive a
/// target as hard as one core can. Everything runs on the thread that calls ``run()``; other threads
/// reach it only through its ``ClosedLoopControl``.
final class ClosedLoopEngine {
    private let configuration: LoadConfiguration
    private let context: LoadRunContext
    private let control: ClosedLoopControl
    private let template: RequestTemplate
    private let address: SocketAddress
    private let maxConnections: Int
    /// The clients its connections send for, one after another: its share of the run's.
    private let clients: [Int]
    private let timeoutNanos: UInt64
    private let sweepNanos: UInt64
    private var pace: LoadPace
    private var keyGenerator: SeededGenerator
    private var tally: LoadTally

    private let epoll: Int32
    private var slots: [Slot] = []
    private var freeSlots: [Int] = []
    /// Connections open or connecting.
    private var connectionCount = 0
    private var connecting = 0
    private var openedConnections = 0
    private var inFlight = 0
    /// When connections whose connect failed are tried again (a pause of ``retryPauseNanos``).
    private var retries: [UInt64] = []
    private var nextSweep: UInt64 = 0
    private var nextPublish: UInt64 = 0
    private var isFinished = false
    /// Where a read lands when its connection holds no partial response.
    private var scratch = ByteBuffer()

    private static let readSize = 65_536
    private static let retryPauseNanos: UInt64 = 10_000_000
    private static let publishPeriodNanos: UInt64 = 100_000_000
    private static let wakeToken = UInt64.max
    /// Sockets are edge-triggered, as SwiftNIO's are: a socket is reported when bytes arrive (or room
    /// to write appears), not on every wait while some remain, so each read must take everything
    /// there is (``readable(_:)`` reads until a read comes back short). Level-triggered, every
    /// socket reported was looked at again on the next wait, which cost the engine 8% more system
    /// time a request than the event loop it replaced.
    private static let edgeTriggered = EPOLLET.rawValue
    /// What an open connection waits for: bytes, and the target closing its side (reported with
    /// them, so that a close that came with the last bytes is not missed).
    private static let readEvents = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue

    /// A connection: its socket and the request on it.
    private struct Slot {
        enum Phase { case free, connecting, open }
        var phase = Phase.free
        var descriptor: Int32 = -1
        /// Told apart from the slot's earlier connections in epoll's events.
        var generation: UInt32 = 0
        var client = 0
        var connectDeadline: UInt64 = 0
        var inFlight: InFlight?
        var parser = HTTPResponseParser()
        /// Bytes of a response that did not complete in the read they came in.
        var cumulation: ByteBuffer?
        /// The request's bytes not yet taken by the socket; its storage is reused for the next one.
        var request = ByteBuffer()
        /// Whether epoll reports writability too (a request only partly written).
        var wantsWritable = false
    }

    private struct InFlight {
        var request: LoadRequest
        var sentNanos: UInt64
        var deadlineNanos: UInt64
        var firstByteNanos: UInt64?
    }

    /// An engine for `connections` connections of the run's closed loop, at most `requestBudget`
    /// requests if given, sending to `address`.
    init(
        index: Int,
        clients: [Int],
        connections: Int,
        requestBudget: Int?,
        address: SocketAddress,
        configuration: LoadConfiguration,
        context: LoadRunContext,
        control: ClosedLoopControl
    ) {
        self.configuration = configuration
        self.context = context
        self.control = control
        self.address = address
        self.template = RequestTemplate(configuration: configuration)
        self.tally = LoadTally(configuration: configuration, context: context, bytesOut: self.template.bodyCount)
        self.maxConnections = max(1, connections)
        self.clients = LoadRun.closedLoopClients(clients, index: index, configuration)
        self.timeoutNanos = UInt64(max(0, configuration.timeout.nanoseconds))
        self.sweepNanos = UInt64(LoadPace.sweepPeriod(timeout: configuration.timeout).nanoseconds)
        self.pace = LoadPace(configuration: configuration, clients: clients, requestBudget: requestBudget, t0Nanos: context.t0Nanos)
        self.keyGenerator = SeededGenerator.derived(seed: configuration.seed, stream: 0x6B65_7973 &+ UInt64(index))
        self.epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(self.epoll >= 0, "epoll_create1: \(String(cString: strerror(errno)))")
        self.scratch = ByteBufferAllocator().buffer(capacity: Self.readSize)
        self.register(control.wakeDescriptor, events: EPOLLIN.rawValue, token: Self.wakeToken, operation: EPOLL_CTL_ADD)
    }

    deinit {
        for slot in self.slots where slot.phase != .free {
            close(slot.descriptor)
        }
        close(self.epoll)
    }

    private static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    // MARK: The loop

    /// Runs the closed loop from the run's t0 until every request has ended, then publishes the final
    /// statistics.
    func run() {
        let events = UnsafeMutableBufferPointer<epoll_event>.allocate(capacity: 256)
        defer { events.deallocate() }
        // Until t0, only a stop can come.
        while !self.control.isStopRequested, Self.now() < self.context.t0Nanos {
            _ = epoll_wait(self.epoll, events.baseAddress, Int32(events.count), Self.millis(until: self.context.t0Nanos))
        }
        let start = Self.now()
        self.nextSweep = start
        self.nextPublish = start &+ Self.publishPeriodNanos
        if self.control.isStopRequested {
            self.stop()
        } else {
            for _ in 0..<self.maxConnections where self.pace.mayStartClosedLoop(now: start) {
                self.openConnection()
            }
        }
        while !self.isFinished {
            self.timers()
            if self.isFinished { break }
            let count = epoll_wait(self.epoll, events.baseAddress, Int32(events.count), self.waitMillis())
            if count < 0, errno != EINTR {
                // Not expected with a valid descriptor and buffer; stop rather than spin.
                self.stop()
            }
            for event in events.prefix(max(0, Int(count))) {
                self.handle(event)
            }
            if self.control.isStopRequested, !self.pace.stopped {
                self.stop()
            }
            self.checkFinished()
        }
    }

    /// Milliseconds from now to `deadline`, rounded up, for epoll_wait.
    private static func millis(until deadline: UInt64) -> Int32 {
        let now = Self.now()
        guard deadline > now else { return 0 }
        return Int32(min((deadline - now + 999_999) / 1_000_000, 1_000))
    }

    private func waitMillis() -> Int32 {
        var deadline = self.nextSweep
        if let retry = self.retries.min() { deadline = min(deadline, retry) }
        return Self.millis(until: deadline)
    }

    /// The sweep for overdue requests and connects, retries due, and the published statistics.
    private func timers() {
        let now = Self.now()
        if !self.retries.isEmpty {
            let due = self.retries.filter { $0 <= now }.count
            if due > 0 {
                self.retries.removeAll { $0 <= now }
                for _ in 0..<due where self.pace.mayStartClosedLoop(now: now) {
                    self.openConnection()
                }
            }
        }
        if now >= self.nextSweep {
            self.nextSweep = now &+ self.sweepNanos
            self.tally.handOverRecords()
            for index in self.slots.indices {
                switch self.slots[index].phase {
                case .open:
                    if let inFlight = self.slots[index].inFlight, now >= inFlight.deadlineNanos {
                        self.fail(index, .timedOut)
                    }
                case .connecting where now >= self.slots[index].connectDeadline:
                    self.closeConnection(index)
                    self.connectFailed(String(cString: strerror(ETIMEDOUT)).lowercased())
                case .connecting, .free:
                    break
                }
            }
            if now >= self.nextPublish {
                self.nextPublish = now &+ Self.publishPeriodNanos
                self.control.publish(self.tally.statistics)
            }
        }
        self.checkFinished()
    }

    private func handle(_ event: epoll_event) {
        let token = event.data.u64
        if token == Self.wakeToken {
            var value: UInt64 = 0
            _ = read(self.control.wakeDescriptor, &value, MemoryLayout<UInt64>.size)
            return
        }
        let index = Int(truncatingIfNeeded: token & 0xFFFF_FFFF)
        guard index < self.slots.count, self.slots[index].generation == UInt32(truncatingIfNeeded: token >> 32) else {
            return  // an event of a connection closed earlier in this batch
        }
        let flags = event.events
        switch self.slots[index].phase {
        case .free:
            return
        case .connecting:
            self.connectCompleted(index)
        case .open:
            if flags & EPOLLOUT.rawValue != 0, self.slots[index].wantsWritable {
                self.writePending(index)
            }
            let ended = EPOLLRDHUP.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue
            if flags & (EPOLLIN.rawValue | ended) != 0, self.slots[index].phase == .open {
                self.readable(index, toTheEnd: flags & ended != 0)
            }
        }
    }

    // MARK: Connections

    private func register(_ descriptor: Int32, events: UInt32, token: UInt64, operation: Int32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = token
        let result = epoll_ctl(self.epoll, operation, descriptor, &event)
        precondition(result == 0, "epoll_ctl: \(String(cString: strerror(errno)))")
    }

    private func token(_ index: Int) -> UInt64 {
        UInt64(self.slots[index].generation) << 32 | UInt64(index)
    }

    private func openConnection() {
        let client = self.clients[self.openedConnections % self.clients.count]
        self.openedConnections += 1
        let descriptor = socket(
            Int32(self.address.protocol.rawValue),
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
            0
        )
        guard descriptor >= 0 else {
            self.connectFailed(String(cString: strerror(errno)).lowercased())
            return
        }
        var one: Int32 = 1
        _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = self.address.withSockAddr { address, size in connect(descriptor, address, socklen_t(size)) }
        let connectErrno = errno
        guard result == 0 || connectErrno == EINPROGRESS else {
            close(descriptor)
            self.connectFailed(String(cString: strerror(connectErrno)).lowercased())
            return
        }
        let index = self.freeSlots.popLast() ?? { self.slots.append(Slot()); return self.slots.count - 1 }()
        self.slots[index].descriptor = descriptor
        self.slots[index].client = client
        self.slots[index].phase = .connecting
        self.slots[index].connectDeadline = Self.now() &+ min(self.timeoutNanos, 10_000_000_000)
        self.connectionCount += 1
        self.connecting += 1
        self.register(descriptor, events: EPOLLOUT.rawValue | Self.edgeTriggered, token: self.token(index), operation: EPOLL_CTL_ADD)
    }

    private func connectCompleted(_ index: Int) {
        var error: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        let result = getsockopt(self.slots[index].descriptor, SOL_SOCKET, SO_ERROR, &error, &size)
        self.connecting -= 1
        guard result == 0, error == 0 else {
            self.closeConnection(index, wasConnecting: false)
            self.connectFailed(String(cString: strerror(result == 0 ? error : errno)).lowercased())
            return
        }
        self.slots[index].phase = .open
        let open = self.connectionCount - self.connecting
        self.tally.statistics.peakConnections = max(self.tally.statistics.peakConnections, open)
        self.register(self.slots[index].descriptor, events: Self.readEvents, token: self.token(index), operation: EPOLL_CTL_MOD)
        self.connectionAvailable(index, now: Self.now())
    }

    /// Closes the connection of slot `index` and frees the slot.
    private func closeConnection(_ index: Int, wasConnecting: Bool? = nil) {
        guard self.slots[index].phase != .free else { return }
        if wasConnecting ?? (self.slots[index].phase == .connecting) {
            self.connecting -= 1
        }
        close(self.slots[index].descriptor)  // also leaves the epoll set
        self.slots[index].phase = .free
        self.slots[index].descriptor = -1
        self.slots[index].generation &+= 1
        self.slots[index].inFlight = nil
        self.slots[index].cumulation = nil
        self.slots[index].wantsWritable = false
        self.connectionCount -= 1
        self.freeSlots.append(index)
    }

    private func connectFailed(_ description: String) {
        self.control.noteConnectError(description)
        let now = Self.now()
        if self.pace.takeClosedLoopTurn(now: now) {
            // Count the failed attempt as a request, then try again after a pause.
            let request = LoadRequest(id: self.context.newRequestID(), client: 0, intendedNanos: now)
            self.tally.endUnsent(request, at: now, error: .connectFailed)
            self.retries.append(now &+ Self.retryPauseNanos)
        }
    }

    /// Opens another connection after one was lost, while the run goes on.
    private func replaceLostConnection() {
        guard !self.pace.stopped, self.connectionCount < self.maxConnections,
            self.pace.mayStartClosedLoop(now: Self.now())
        else { return }
        self.openConnection()
    }

    // MARK: Requests

    /// The connection of slot `index` can take a request at `now`: it sends one if the pace allows.
    private func connectionAvailable(_ index: Int, now: UInt64) {
        guard self.pace.takeClosedLoopTurn(now: now) else { return }
        var request = LoadRequest(id: self.context.newRequestID(), client: self.slots[index].client, intendedNanos: now)
        request.key = self.configuration.keys.map { $0.next(using: &self.keyGenerator) }
        let sent = Self.now()
        self.slots[index].inFlight = InFlight(request: request, sentNanos: sent, deadlineNanos: sent &+ self.timeoutNanos)
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
    private func writePending(_ index: Int) {
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
    private func readable(_ index: Int, toTheEnd: Bool) {
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

    /// One read from the socket of slot `index`, handed to the response parser.
    private func readOnce(_ index: Int) -> ReadOutcome {
        let descriptor = self.slots[index].descriptor
        var result = 0
        var readErrno: Int32 = 0
        var space = 0
        let intoCumulation = self.slots[index].cumulation != nil
        repeat {
            if intoCumulation {
                self.slots[index].cumulation!.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.readSize) { bytes in
                    space = bytes.count
                    result = read(descriptor, bytes.baseAddress, bytes.count)
                    readErrno = errno
                    return max(0, result)
                }
            } else {
                self.scratch.clear()
                self.scratch.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.readSize) { bytes in
                    space = bytes.count
                    result = read(descriptor, bytes.baseAddress, bytes.count)
                    readErrno = errno
                    return max(0, result)
                }
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
        // The partial response, taken out of its slot while the slot's parser reads it.
        var pending = intoCumulation ? self.slots[index].cumulation.take() : nil
        let progress: HTTPResponseParser.Progress
        do {
            if pending != nil {
                progress = try self.slots[index].parser.parse(&pending!)
            } else {
                progress = try self.slots[index].parser.parse(&self.scratch)
            }
        } catch {
            self.fail(index, .badResponse)
            return .nothing
        }
        switch progress {
        case .needMoreData:
            // Keep what the parser left (a partial head or chunk line), and only that.
            if pending != nil, pending!.readableBytes > 0 {
                pending!.discardReadBytes()
                self.slots[index].cumulation = pending
            } else if !intoCumulation, self.scratch.readableBytes > 0 {
                var rest = ByteBufferAllocator().buffer(capacity: self.scratch.readableBytes + Self.readSize)
                rest.writeBuffer(&self.scratch)
                self.slots[index].cumulation = rest
            }
        case .complete:
            self.complete(index, keepAlive: self.slots[index].parser.head?.keepAlive ?? false, at: now)
        }
        return filled
    }

    private func complete(_ index: Int, keepAlive: Bool, at doneNanos: UInt64) {
        guard let done = self.slots[index].inFlight else { return }
        self.slots[index].inFlight = nil
        self.inFlight -= 1
        let head = self.slots[index].parser.head
        self.tally.end(
            LoadConnectionHandler.Outcome(
                request: done.request,
                sentNanos: done.sentNanos,
                firstByteNanos: done.firstByteNanos,
                doneNanos: doneNanos,
                status: head?.status,
                backend: head?.backend,
                bytesIn: Int64(self.slots[index].parser.bodyBytes),
                error: nil,
                reusable: keepAlive
            )
        )
        if keepAlive {
            self.connectionAvailable(index, now: doneNanos)
        } else {
            self.closeConnection(index)
            self.replaceLostConnection()
        }
    }

    /// Ends the request on slot `index`, if any, with `error`, and retires the connection.
    private func fail(_ index: Int, _ error: RequestFailure) {
        if let failed = self.slots[index].inFlight {
            self.slots[index].inFlight = nil
            self.inFlight -= 1
            self.tally.end(
                LoadConnectionHandler.Outcome(
                    request: failed.request,
                    sentNanos: failed.sentNanos,
                    firstByteNanos: failed.firstByteNanos,
                    doneNanos: Self.now(),
                    status: nil,
                    backend: self.slots[index].parser.head?.backend,
                    bytesIn: Int64(self.slots[index].parser.bodyBytes),
                    error: error,
                    reusable: false
                )
            )
        }
        self.closeConnection(index)
        self.replaceLostConnection()
    }

    // MARK: Stopping

    /// Stops sending; the requests in flight end as `interrupted`.
    private func stop() {
        guard !self.pace.stopped else { return }
        self.pace.stop()
        self.retries.removeAll()
        for index in self.slots.indices where self.slots[index].inFlight != nil {
            self.fail(index, .interrupted)
        }
        self.checkFinished()
    }

    /// Finishes once nothing more will be sent and nothing is in flight or connecting.
    private func checkFinished() {
        guard !self.isFinished, self.inFlight == 0, self.connecting == 0, self.pace.isDone(now: Self.now()) else { return }
        self.isFinished = true
        self.tally.handOverRecords()
        for index in self.slots.indices {
            self.closeConnection(index)
        }
        self.control.publish(self.tally.statistics)
    }
}

@available(*, unavailable)
extension ClosedLoopEngine: Sendable {}
#endif
