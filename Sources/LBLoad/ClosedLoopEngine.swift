#if os(Linux)
import CLinuxEvents
import Glibc
import LBCore
import NIOCore

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
    let configuration: LoadConfiguration
    let context: LoadRunContext
    private let control: ClosedLoopControl
    let template: RequestTemplate
    private let address: SocketAddress
    private let maxConnections: Int
    /// The clients its connections send for, one after another: its share of the run's.
    private let clients: [Int]
    let timeoutNanos: UInt64
    private let connectTimeoutNanos: UInt64
    private let sweepNanos: UInt64
    var pace: LoadPace
    var keyGenerator: SeededGenerator
    var tally: LoadTally

    private let epoll: Int32
    var slots: [Slot] = []
    private var freeSlots: [Int] = []
    /// Connections open or connecting.
    private var connectionCount = 0
    private var connecting = 0
    private var openedConnections = 0
    /// Requests on the wire.
    var inFlight = 0
    /// When connections whose connect failed are tried again (``LoadPace/connectRetryPause`` later).
    private var retries: [UInt64] = []
    private var nextSweep: UInt64 = 0
    private var nextPublish: UInt64 = 0
    private var isFinished = false
    /// Where every read lands, reused from one read to the next.
    var scratch = ByteBuffer()

    static let readSize = 65_536
    private static let publishPeriodNanos: UInt64 = 100_000_000
    private static let wakeToken = UInt64.max
    /// Sockets are edge-triggered, as SwiftNIO's are: a socket is reported when bytes arrive (or room
    /// to write appears), not on every wait while some remain, so each read must take everything
    /// there is (``readable(_:toTheEnd:)`` reads until a read comes back short). Level-triggered, every
    /// socket reported was looked at again on the next wait, which cost the engine 8% more system
    /// time a request than the event loop it replaced.
    private static let edgeTriggered = EPOLLET.rawValue
    /// What an open connection waits for: bytes, and the target closing its side (reported with
    /// them, so that a close that came with the last bytes is not missed).
    static let readEvents = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue

    /// A connection: its socket and the request on it.
    struct Slot {
        enum Phase { case free, connecting, open }
        var phase = Phase.free
        var descriptor: Int32 = -1
        /// Told apart from the slot's earlier connections in epoll's events.
        var generation: UInt32 = 0
        var client = 0
        var connectDeadline: UInt64 = 0
        var inFlight: RequestInFlight?
        var parser = HTTPResponseParser()
        /// Bytes of a response that did not complete in the read they came in.
        var cumulation: ByteBuffer?
        /// The request's bytes not yet taken by the socket; its storage is reused for the next one.
        var request = ByteBuffer()
        /// Whether epoll reports writability too (a request only partly written).
        var wantsWritable = false
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
        self.connectTimeoutNanos = UInt64(max(0, LoadPace.connectTimeout(configuration.timeout).nanoseconds))
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

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

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

    func register(_ descriptor: Int32, events: UInt32, token: UInt64, operation: Int32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = token
        let result = epoll_ctl(self.epoll, operation, descriptor, &event)
        precondition(result == 0, "epoll_ctl: \(String(cString: strerror(errno)))")
    }

    func token(_ index: Int) -> UInt64 {
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
        self.slots[index].connectDeadline = Self.now() &+ self.connectTimeoutNanos
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
    func closeConnection(_ index: Int, wasConnecting: Bool? = nil) {
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
            self.retries.append(now &+ UInt64(LoadPace.connectRetryPause.nanoseconds))
        }
    }

    /// Opens another connection after one was lost, while the run goes on.
    func replaceLostConnection() {
        guard !self.pace.stopped, self.connectionCount < self.maxConnections,
            self.pace.mayStartClosedLoop(now: Self.now())
        else { return }
        self.openConnection()
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
